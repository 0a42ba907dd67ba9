#!/usr/bin/env bash
# PostgreSQL and replicas: push throughput and push → webhook latency of
# `wxrelay serve` processes on SQLite, on PostgreSQL with one replica and on
# PostgreSQL with two replicas (pushes split between them), in one run
# (BenchmarkReplicas in cmd/wxrelay/replica_bench_test.go). Starts a
# throwaway PostgreSQL as .ci/run does (needs root and Debian's postgresql
# package), unless WXRELAY_TEST_POSTGRES names one already.
#
#   docs/bench/replicas.sh                      # 3 runs
#   COUNT=1 WXRELAY_BENCH_RATE=1000 docs/bench/replicas.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"

if [ -z "${WXRELAY_TEST_POSTGRES:-}" ]; then
  PGBIN=$(dirname "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)")
  PGTMP=$(mktemp -d /tmp/wxrelay-bench-pg.XXXXXX)
  PGPORT=${PGPORT:-54340}
  stop_pg() {
    su postgres -s /bin/sh -c "'$PGBIN/pg_ctl' -D '$PGTMP/data' -m fast stop" >/dev/null 2>&1 || true
    rm -rf "$PGTMP"
  }
  trap stop_pg EXIT
  chown postgres:postgres "$PGTMP"
  su postgres -s /bin/sh -c "'$PGBIN/initdb' -D '$PGTMP/data' -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >'$PGTMP/initdb.log'"
  # Defaults otherwise: fsync and synchronous_commit on, so every answered
  # push is on disk, as with SQLite's synchronous=FULL.
  su postgres -s /bin/sh -c "'$PGBIN/pg_ctl' -D '$PGTMP/data' -l '$PGTMP/server.log' -w -o \"-c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories='$PGTMP' -c max_connections=300\" start" >/dev/null
  export WXRELAY_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PGPORT/postgres?sslmode=disable"
fi

# Whole runs one after another, so that each run's three cases meet the
# same load on this shared machine.
go test -c -o "${TMPDIR:-/tmp}/wxrelay-replicas.test" ./cmd/wxrelay
trap 'rm -f "${TMPDIR:-/tmp}/wxrelay-replicas.test"; ${PGTMP:+stop_pg}' EXIT
for run in $(seq "${COUNT:-3}"); do
  echo "== run $run"
  (cd cmd/wxrelay && "${TMPDIR:-/tmp}/wxrelay-replicas.test" -test.run '^$' -test.bench '^BenchmarkReplicas$' -test.benchtime 1x -test.timeout 30m)
done
