#!/bin/sh
# Starts one Sentinel of the StatefulSet "redis-sentinel" (3 pods, quorum 2). It monitors
# the primary the other Sentinels name, or redis-0 on the cluster's first start. Pods are
# named by DNS (resolve-hostnames, announce-hostnames), so a rescheduled pod keeps its name.
set -eu
SELF="$(hostname).redis-sentinel"
CONF="${REDIS_RUN_DIR:-/run/redis}/sentinel.conf"
MASTER=""
for i in 0 1 2; do
  PEER="redis-sentinel-$i.redis-sentinel"
  [ "$PEER" = "$SELF" ] && continue
  ANSWER="$(timeout 3 redis-cli -h "$PEER" -p 26379 --raw \
    SENTINEL get-master-addr-by-name sealrelay 2>/dev/null | head -n 1 || true)"
  case "$ANSWER" in
    ""|ERR*|*" "*) ;;
    *) MASTER="$ANSWER"; break ;;
  esac
done
if [ -z "$MASTER" ]; then
  MASTER="redis-0.redis"
fi
cat > "$CONF" <<CONF
port 26379
protected-mode no
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $SELF
sentinel monitor sealrelay $MASTER 6379 2
sentinel down-after-milliseconds sealrelay 5000
sentinel failover-timeout sealrelay 30000
sentinel parallel-syncs sealrelay 1
CONF
exec redis-sentinel "$CONF"
