# shellcheck shell=bash
# Common helpers for the beanfleet fleet scripts. Source it, don't run it.
#   REPO_ROOT  the git checkout (located from this file, never hard-coded)
#   BUILD_DIR  build outputs (default $REPO_ROOT/build, override BEANFLEET_BUILD_DIR)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BEANFLEET_BUILD_DIR:-$REPO_ROOT/build}"
SCRIPTS_DIR="$REPO_ROOT/scripts"
export REPO_ROOT BUILD_DIR SCRIPTS_DIR

# Debian mirror used to fill the local apt repository (the only place that
# downloads .debs). Override for a local mirror / snapshot.
BEANFLEET_DEBIAN_MIRROR="${BEANFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BEANFLEET_SECURITY_MIRROR="${BEANFLEET_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

SUPPORTED_RELEASES="bookworm trixie"

log()  { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${LOG_TAG:-beanfleet}" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }

check_release() {
    local r="${1:-}"
    case " $SUPPORTED_RELEASES " in
        *" $r "*) ;;
        *) die "unsupported release '${r}' (expected one of: $SUPPORTED_RELEASES)";;
    esac
}

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "required command '$c' not found (apt-get install the package that provides it)"
    done
}

# sha256 of files and strings: hash_inputs FILE... -- STRING...
hash_inputs() {
    {
        while [ $# -gt 0 ] && [ "$1" != "--" ]; do
            printf 'file %s\n' "$(basename "$1")"
            cat "$1"
            shift
        done
        [ $# -gt 0 ] && shift
        printf 'str %s\n' "$@"
    } | sha256sum | cut -d' ' -f1
}

# retry N CMD...: run CMD up to N times; between attempts run $RETRY_CLEANUP
# (a command string) when set.
retry() {
    local n="$1" i=1; shift
    while :; do
        if "$@"; then return 0; fi
        if [ "$i" -ge "$n" ]; then
            log "failed after $n attempts: $*"
            return 1
        fi
        log "attempt $i/$n failed: $*; retrying"
        if [ -n "${RETRY_CLEANUP:-}" ]; then eval "$RETRY_CLEANUP" || true; fi
        i=$((i + 1))
        sleep "$i"
    done
}

# timed LABEL CMD...: run CMD, print its wall time, record it in
# $BUILD_DIR/timings.log. Returns CMD's status.
timed() {
    local label="$1"; shift
    local start end rc=0
    start=$(date +%s.%N)
    "$@" || rc=$?
    end=$(date +%s.%N)
    local secs
    secs=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')
    log "TIMING ${label}: ${secs}s (exit ${rc})"
    mkdir -p "$BUILD_DIR"
    printf '%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$label" "$secs" "$rc" >> "$BUILD_DIR/timings.log"
    return "$rc"
}
