#!/usr/bin/env bash
# Push ingress benchmark: distinct safe-mode JSON text pushes at concurrency
# 64 to a relay on SQLite (every answer durable: synchronous=FULL, group
# commit), alternating rounds with a bare net/http handler that reads the
# body and answers "success"; then a fixed rate of 1,000 pushes/s.
#
#   docs/bench/ingress.sh
source "$(dirname "$0")/common.sh"
# The first delivery attempt is due an hour after each push, so this
# measures ingest alone; docs/bench/delivery.sh measures both together.
start_relay WXRELAY_RETRY_SCHEDULE=1h WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true
PUSH_URL=$(create_tenant "http://127.0.0.1:9/")
echo "== closed loop, concurrency 64: relay vs bare handler"
"$WORK/wxsim" load --compare --url "$PUSH_URL" --token $TOKEN --appid $APPID --aes-key $AESKEY \
  --concurrency 64 --rounds ${ROUNDS:-5} --round-duration ${ROUND:-3s} --prepare 200000
echo
echo "== open loop, 1,000 pushes/s for 10 s"
"$WORK/wxsim" load --url "$PUSH_URL" --token $TOKEN --appid $APPID --aes-key $AESKEY --rate 1000 --duration 10s
