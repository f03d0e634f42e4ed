#!/usr/bin/env bash
# Start dockerd if it is not already answering, then wait until `docker info`
# works. Idempotent. Logs to $BUILD_DIR/dockerd.log.
#
# Env:
#   BEANFLEET_DOCKER_STORAGE_DRIVERS  drivers to try in order (default "overlay2 vfs")
#   BEANFLEET_DOCKERD_TIMEOUT         seconds to wait for each attempt (default 60)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=dockerd-up

need_cmd docker
mkdir -p "$BUILD_DIR"
LOGFILE="$BUILD_DIR/dockerd.log"
TIMEOUT="${BEANFLEET_DOCKERD_TIMEOUT:-60}"
DRIVERS="${BEANFLEET_DOCKER_STORAGE_DRIVERS:-overlay2 vfs}"

docker_ok() { docker info >/dev/null 2>&1; }

# wait_docker PID: poll `docker info` until it answers, the daemon PID dies,
# or TIMEOUT passes.
wait_docker() {
    local pid="${1:-}" deadline=$((SECONDS + TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if docker_ok; then return 0; fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.5
    done
    return 1
}

if docker_ok; then
    log "docker already running ($(docker info --format '{{.ServerVersion}}, storage {{.Driver}}' 2>/dev/null))"
    exit 0
fi

# A daemon may be starting (e.g. another fleet.sh run started it a moment ago).
if pid=$(pgrep -x dockerd | head -n1) && [ -n "$pid" ]; then
    log "dockerd (pid $pid) is running but not answering yet; waiting up to ${TIMEOUT}s"
    if wait_docker "$pid"; then
        log "docker is up"
        exit 0
    fi
    die "dockerd (pid $pid) is running but 'docker info' fails; see $LOGFILE or stop it and retry"
fi

if [ "$(id -u)" -ne 0 ]; then
    die "docker is not running and starting dockerd needs root (run as root, or start docker yourself)"
fi
need_cmd dockerd

for driver in $DRIVERS; do
    log "starting dockerd (storage driver $driver), log: $LOGFILE"
    printf '\n==== %s: dockerd --storage-driver=%s ====\n' "$(date -u +%FT%TZ)" "$driver" >> "$LOGFILE"
    # setsid: the daemon must outlive this script and its caller's process group.
    detached setsid dockerd --storage-driver="$driver" </dev/null >>"$LOGFILE" 2>&1 &
    pid=$!
    if wait_docker "$pid"; then
        log "docker is up: $(docker info --format 'server {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}' 2>/dev/null)"
        exit 0
    fi
    if kill -0 "$pid" 2>/dev/null; then
        log "dockerd (pid $pid) did not answer within ${TIMEOUT}s; stopping it"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
    log "dockerd failed with storage driver $driver; last log lines:"
    tail -n 5 "$LOGFILE" >&2 || true
done

die "could not start dockerd (tried storage drivers: $DRIVERS); see $LOGFILE"
