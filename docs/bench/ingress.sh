#!/usr/bin/env bash
# Push ingress benchmark: distinct safe-mode JSON text pushes at concurrency
# 64 to a relay on SQLite (every answer durable: synchronous=FULL, group
# commit), alternating rounds with a bare net/http handler that reads the
# body and answers "success", then with one that also appends each push to
# a file and fsyncs it (group commit) before answering, the durability
# floor; then a fixed rate of 1,000 pushes/s.
#
#   docs/bench/ingress.sh
#
# The bare handler is a process of its own ("wxsim bare"), as the relay is:
# both pay for every request crossing from the load generator's process to
# theirs. BARE=inprocess puts it inside the load generator's process
# instead, as this script did before (there it ran about 1.5 times as fast).
source "$(dirname "$0")/common.sh"
# The first delivery attempt is due an hour after each push, so this
# measures ingest alone; BenchmarkPushToWebhook (relay/delivery) measures
# ingest and delivery together.
start_relay WXRELAY_RETRY_SCHEDULE=1h WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true
PUSH_URL=$(create_tenant "http://127.0.0.1:9/")
BARE_FLAGS=()
if [ "${BARE:-process}" != inprocess ]; then
  start_bare
  BARE_FLAGS=(--bare-url "$BARE_URL")
fi
echo "== closed loop, concurrency 64: relay vs bare handler (${BARE:-process})"
"$WORK/wxsim" load --compare --url "$PUSH_URL" --token $TOKEN --appid $APPID --aes-key $AESKEY \
  --concurrency 64 --rounds ${ROUNDS:-5} --round-duration ${ROUND:-3s} --prepare 200000 "${BARE_FLAGS[@]}"
echo
# The physical floor: a bare handler, a process of its own, that appends
# each push to a file and group-commits it, one fsync a batch, before it
# answers. The disk's speed moves it as it moves the relay, so this ratio
# says what the relay adds to the durability it must pay for anyway.
start_durable_bare
echo "== closed loop, concurrency 64: relay vs the durable bare handler"
"$WORK/wxsim" load --compare --url "$PUSH_URL" --token $TOKEN --appid $APPID --aes-key $AESKEY \
  --concurrency 64 --rounds ${ROUNDS:-5} --round-duration ${ROUND:-3s} --prepare 200000 --bare-url "$DURABLE_URL"
echo
echo "== open loop, 1,000 pushes/s for 10 s"
"$WORK/wxsim" load --url "$PUSH_URL" --token $TOKEN --appid $APPID --aes-key $AESKEY --rate 1000 --duration 10s
