#!/usr/bin/env bash
# scripts/demo.sh — after `scripts/fleet.sh up`: put a batch of demo jobs from the controller,
# wait until the queue drains, then show the stats and the work the pools did.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export BEANFLEET_RELEASE="${BEANFLEET_RELEASE:-bookworm}"
export BEANFLEET_MANAGER="${BEANFLEET_MANAGER:-systemd}"
FLEET_JSON="$(fleet_dir)/fleet.json"
[ -f "$FLEET_JSON" ] || die "no running fleet ($FLEET_JSON missing): run scripts/fleet.sh up"
BIN="$REPO_ROOT/.venv/bin"
queue_addr="$("$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["machines"]["queue"]["address"])' "$FLEET_JSON")"
export BEANFLEET_SERVER="$queue_addr:11300"
container() { "$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["machines"][sys.argv[2]]["container_name"])' "$FLEET_JSON" "$1"; }

echo "== putting demo jobs to $BEANFLEET_SERVER"
for i in $(seq 1 20); do
  "$BIN/beanfleet" put --tube emails "{\"to\": \"user$i@example.com\", \"subject\": \"Welcome $i\", \"body\": \"Hello from beanfleet\"}" >/dev/null
done
for day in 1 2 3 4 5; do
  "$BIN/beanfleet" put --tube reports --priority high "{\"name\": \"daily-$day\", \"rows\": [[\"day\", \"orders\"], [\"$day\", \"$((day * 7))\"]]}" >/dev/null
done
"$BIN/beanfleet" put --tube fail '{"why": "shows retry then bury"}' >/dev/null

echo "== waiting for the emails and reports tubes to drain"
deadline=$((SECONDS + 120))
until "$BIN/beanfleet" stats --json | "$BIN/python" -c '
import json, sys
tubes = {t["name"]: t for t in json.load(sys.stdin).get("tubes", [])}
busy = sum(tubes.get(n, {}).get(k, 0) for n in ("emails", "reports")
           for k in ("ready", "reserved", "delayed"))
sys.exit(1 if busy else 0)'; do
  [ $SECONDS -lt $deadline ] || die "demo jobs not processed within 120 s"
  sleep 1
done

echo "== beanfleet stats"
"$BIN/beanfleet" stats
for host in worker1 worker2; do
  c="$(container "$host")"
  echo "== work done on $host"
  docker exec "$c" sh -c 'echo "maildir messages: $(ls /var/lib/beanfleet/maildir/new 2>/dev/null | wc -l)"; echo "reports: $(ls /var/lib/beanfleet/reports 2>/dev/null | wc -l)"' || true
done
# The monitor machine's Prometheus (when the fleet has one): its targets and alerts.
if monitor="$(container monitor 2>/dev/null)"; then
  addr="$(docker inspect --format '{{.NetworkSettings.IPAddress}}' "$monitor")"
  echo "== Prometheus: http://$addr:9090"
  curl -fsS --max-time 10 "http://$addr:9090/api/v1/targets" | "$BIN/python" -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
up = sum(t["health"] == "up" for t in targets)
print(f"scrape targets up: {up} of {len(targets)}")' || echo "Prometheus did not answer"
  curl -fsS --max-time 10 "http://$addr:9090/api/v1/alerts" | "$BIN/python" -c '
import json, sys
alerts = [a for a in json.load(sys.stdin)["data"]["alerts"] if a["state"] == "firing"]
print("alerts firing:", ", ".join(sorted({a["labels"]["alertname"] + "{" + a["labels"].get("tube", "") + "}" for a in alerts})) or "none")' || true
fi
