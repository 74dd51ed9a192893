#!/bin/sh
# Starts one Redis of the StatefulSet "redis" (pods redis-0, redis-1, ...). The primary is
# the one the Sentinels name; when no Sentinel answers (first start of the cluster), redis-0
# is the primary and the others replicate it.
set -eu
SELF="$(hostname).redis"
RUN="${REDIS_RUN_DIR:-/run/redis}"
CONFIG="${REDIS_CONFIG_DIR:-/config}"
CONF="$RUN/redis.conf"
MASTER=""
for i in 0 1 2; do
  ANSWER="$(timeout 3 redis-cli -h "redis-sentinel-$i.redis-sentinel" -p 26379 --raw \
    SENTINEL get-master-addr-by-name sealrelay 2>/dev/null | head -n 1 || true)"
  case "$ANSWER" in
    ""|ERR*|*" "*) ;;
    *) MASTER="$ANSWER"; break ;;
  esac
done
if [ -z "$MASTER" ]; then
  MASTER="redis-0.redis"
fi
cp "$CONFIG/redis.conf" "$CONF"
echo "replica-announce-ip $SELF" >> "$CONF"
if [ "$MASTER" != "$SELF" ]; then
  echo "replicaof $MASTER 6379" >> "$CONF"
fi
exec redis-server "$CONF"
