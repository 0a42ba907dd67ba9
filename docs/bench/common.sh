# Shared by the benchmark scripts: builds the binaries, starts a relay on a
# fresh SQLite database in a temp directory, and onboards one tenant.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d /tmp/wxrelay-bench.XXXXXX)
cleanup() {
  [ -n "${RELAY_PID:-}" ] && kill "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null
  [ -n "${SINK_PID:-}" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
  [ -n "${BARE_PID:-}" ] && kill "$BARE_PID" 2>/dev/null && wait "$BARE_PID" 2>/dev/null
  [ -n "${DURABLE_PID:-}" ] && kill "$DURABLE_PID" 2>/dev/null && wait "$DURABLE_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && go build -o "$WORK/wxrelay" ./cmd/wxrelay && go build -o "$WORK/wxsim" ./cmd/wxsim)

HTTP_PORT=${HTTP_PORT:-18080}
GRPC_PORT=${GRPC_PORT:-19090}
RELAY="http://127.0.0.1:$HTTP_PORT"
APPID=wx0123456789abcdef
TOKEN=BenchToken1
AESKEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG

start_relay() { # extra env assignments as arguments
  (cd "$WORK" && exec env "$@" WXRELAY_HTTP_ADDR=127.0.0.1:$HTTP_PORT WXRELAY_GRPC_ADDR=127.0.0.1:$GRPC_PORT \
     WXRELAY_LOG_LEVEL=warn ./wxrelay serve 2>"$WORK/relay.log") &
  RELAY_PID=$!
  for _ in $(seq 100); do curl -fs "$RELAY/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "relay did not start:" >&2; cat "$WORK/relay.log" >&2; exit 1
}

start_bare() { # sets BARE_URL: wxsim's bare handler, a process of its own as the relay is
  local port=${BARE_PORT:-18181}
  "$WORK/wxsim" bare --addr 127.0.0.1:$port 2>"$WORK/bare.log" &
  BARE_PID=$!
  BARE_URL="http://127.0.0.1:$port/wx/bare"
  for _ in $(seq 100); do curl -fs -X POST "$BARE_URL" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "bare handler did not start:" >&2; cat "$WORK/bare.log" >&2; exit 1
}

start_durable_bare() { # sets DURABLE_URL: the bare handler that also has each push on disk before it answers
  local port=${DURABLE_PORT:-18182}
  "$WORK/wxsim" bare --addr 127.0.0.1:$port --durable "$WORK/durable-pushes" 2>"$WORK/durable.log" &
  DURABLE_PID=$!
  DURABLE_URL="http://127.0.0.1:$port/wx/bare"
  for _ in $(seq 100); do curl -fs -X POST "$DURABLE_URL" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "durable bare handler did not start:" >&2; cat "$WORK/durable.log" >&2; exit 1
}

create_tenant() { # webhook_url
  local admin; admin=$(cd "$WORK" && ./wxrelay admin-token)
  curl -fsS -X POST "$RELAY/v1/tenants" -H "Authorization: Bearer $admin" -d "{
    \"appid\":\"$APPID\",\"app_secret\":\"s\",\"token\":\"$TOKEN\",\"encoding_aes_key\":\"$AESKEY\",
    \"encrypt_mode\":\"ENCRYPT_MODE_SAFE\",\"data_format\":\"DATA_FORMAT_JSON\",\"webhook_url\":\"$1\"}" \
    | sed -E 's/.*"push_url":"([^"]+)".*/\1/' | sed "s#http://localhost:8080#$RELAY#"
}
