#!/usr/bin/env bash
# scripts/wheelhouse.sh [--force]
#
# Build the controller-side wheelhouse ($BUILD_DIR/wheelhouse, the value of the
# Ansible variable beanfleet_wheelhouse) that the beanfleet role copies to
# worker hosts and installs with `pip install --no-index --find-links`.
#
# It holds, in ONE directory, wheels for every target Python
# (BEANFLEET_WHEEL_PYTHONS, default "3.11 3.13" = bookworm and trixie):
#   - the local packages: worker/ and every examples/*/ with a pyproject.toml
#     (built once, pure Python);
#   - all their dependencies, as binary wheels for each target Python and
#     manylinux (pip download --only-binary=:all: --python-version ...), so
#     compiled deps (Pillow, PyYAML, ...) exist for cp311 and cp313;
#   - pip, setuptools and wheel (so a role may upgrade pip in its venv);
#   - BEANFLEET_WHEEL_EXTRA: extra requirement specifiers, if any.
# pip picks the right wheel per host. Pure-Python deps that exist only as
# sdists are built into wheels on the controller first.
#
# Cached: skipped when its inputs (this script, the local packages' files,
# the extra requirements) are unchanged; --force rebuilds.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=wheelhouse

FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1
PYTHONS="${BEANFLEET_WHEEL_PYTHONS:-3.11 3.13}"
ARCH="${BEANFLEET_WHEEL_ARCH:-$(uname -m)}"
EXTRA="${BEANFLEET_WHEEL_EXTRA:-}"
take_lock "wheelhouse"
OUT="$BUILD_DIR/wheelhouse"
STAMP="$OUT/.inputs-hash"
PY="$(controller_python)"

# Local packages present right now (the tree is being written by others).
LOCAL_PKGS=()
[ -f "$REPO_ROOT/worker/pyproject.toml" ] && LOCAL_PKGS+=("$REPO_ROOT/worker")
for d in "$REPO_ROOT"/examples/*/; do
    [ -f "$d/pyproject.toml" ] && LOCAL_PKGS+=("${d%/}")
done
if [ "${#LOCAL_PKGS[@]}" -eq 0 ]; then
    log "WARNING: no local packages found (worker/pyproject.toml missing); building a wheelhouse of pip/setuptools/wheel${EXTRA:+ and: $EXTRA} only"
fi

# Inputs: every file of the local packages except caches/build outputs.
src_hash() {
    local d
    for d in "${LOCAL_PKGS[@]}"; do
        (cd "$d" && find . -type f \
            -not -path '*/__pycache__/*' -not -path '*/.*_cache/*' -not -path '*.egg-info/*' \
            -not -path '*/.hypothesis/*' -not -path './build/*' -not -path './dist/*' -not -name '*.pyc' -print0 \
            | sort -z | xargs -0 -r sha256sum | sed "s|  \./|  $(basename "$d")/|")
    done | sha256sum | cut -d' ' -f1
}
INPUTS_HASH="$(hash_inputs "$0" -- "$PYTHONS" "$ARCH" "$EXTRA" "$(src_hash)")"
if [ "$FORCE" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$INPUTS_HASH" ]; then
    log "up to date ($(find "$OUT" -name '*.whl' | wc -l) wheels in $OUT)"
    exit 0
fi

mkdir -p "$BUILD_DIR"
WORK="$(mktemp -d "$BUILD_DIR/wheelhouse-work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
WH="$WORK/wheelhouse"
mkdir -p "$WH"
pip_() { "$PY" -m pip --disable-pip-version-check "$@"; }

# manylinux tags every supported Debian's glibc accepts (bookworm 2.36,
# trixie 2.41): manylinux_2_17 .. manylinux_2_36 + the legacy aliases.
PLATFORM_ARGS=()
for m in $(seq 36 -1 17); do PLATFORM_ARGS+=(--platform "manylinux_2_${m}_${ARCH}"); done
PLATFORM_ARGS+=(--platform "manylinux2014_${ARCH}" --platform "manylinux2010_${ARCH}" --platform "manylinux1_${ARCH}")

# 1. Local packages -> wheels (no deps; pure Python).
if [ "${#LOCAL_PKGS[@]}" -gt 0 ]; then
    log "building wheels of: ${LOCAL_PKGS[*]#"$REPO_ROOT"/}"
    retry 3 pip_ wheel -q --no-deps -w "$WH" "${LOCAL_PKGS[@]}" \
        || die "pip wheel of the local packages failed"
fi
mapfile -t LOCAL_WHEELS < <(find "$WH" -name '*.whl' | sort)
REQS=("${LOCAL_WHEELS[@]}" pip setuptools wheel)
if [ -n "$EXTRA" ]; then
    read -r -a extra_reqs <<<"$EXTRA"
    REQS+=("${extra_reqs[@]}")
fi

# 2. Dependencies as binary wheels for each target Python.
download_for() {
    local v="$1"
    pip_ download -q --only-binary=:all: --dest "$WH" --find-links "$WH" \
        --implementation cp --python-version "$v" --abi "cp${v/./}" --abi abi3 --abi none \
        "${PLATFORM_ARGS[@]}" "${REQS[@]}"
}
for v in $PYTHONS; do
    log "downloading dependencies for Python $v ($ARCH)"
    if ! retry 2 download_for "$v"; then
        # Maybe a pure-Python dependency has no wheel on PyPI: build wheels
        # with the controller's pip (sdists -> py3-none-any wheels) and retry.
        log "binary-only download failed for Python $v; building missing pure-Python wheels from sdists"
        pip_ wheel -q -w "$WH" --find-links "$WH" "${REQS[@]}" || die "pip wheel of the dependencies failed"
        retry 2 download_for "$v" || die "no installable wheels for Python $v (a compiled dependency without a manylinux wheel?)"
    fi
done

echo "$INPUTS_HASH" > "$WH/.inputs-hash"
rm -rf "$OUT.old"
[ -d "$OUT" ] && mv "$OUT" "$OUT.old"
mv "$WH" "$OUT"
rm -rf "$OUT.old"
log "$(find "$OUT" -name '*.whl' | wc -l) wheels, $(du -sh "$OUT" | cut -f1) in $OUT:"
find "$OUT" -name '*.whl' -printf '  %f\n' | sort >&2
