#!/usr/bin/env bash
# scripts/apt-repo.sh RELEASE [--refresh]
#
# Build a local flat apt repository for RELEASE (bookworm|trixie) in
# $BUILD_DIR/apt/RELEASE with every .deb the fleet needs: the image's package
# set (minbase + IMAGE_PACKAGES, see lib.sh) and the roles' packages
# (REPO_PACKAGES), each with its full dependency closure, resolved by
# mmdebstrap against RELEASE's own archive (works for trixie from a bookworm
# host). Fleet hosts have no network: their only apt source is this repo,
# bind-mounted read-only at /srv/apt/RELEASE.
#
# Cached: does nothing when the inputs (scripts, package lists, mirrors) are
# unchanged. --refresh (or BEANFLEET_REFRESH=1) rebuilds anyway, to pick up
# archive updates. Downloaded .debs are kept in $BUILD_DIR/apt-cache/RELEASE.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=apt-repo

RELEASE="${1:-}"
check_release "$RELEASE"
REFRESH="${BEANFLEET_REFRESH:-0}"
[ "${2:-}" = "--refresh" ] && REFRESH=1

need_cmd mmdebstrap dpkg-scanpackages gzip sha256sum
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap needs it here)"

take_lock "apt-$RELEASE"
REPO="$(apt_repo_dir "$RELEASE")"
CACHE="$BUILD_DIR/apt-cache/$RELEASE"
STAMP="$REPO/.inputs-hash"
SOURCES="$(debian_sources "$RELEASE")"
INPUTS_HASH="$(hash_inputs "$0" -- "$RELEASE" "$IMAGE_PACKAGES" "$REPO_PACKAGES" "$SOURCES")"

if [ "$REFRESH" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$INPUTS_HASH" ] && [ -s "$REPO/Packages" ]; then
    log "$RELEASE: up to date ($(grep -c '^Package:' "$REPO/Packages") packages in $REPO)"
    exit 0
fi

mkdir -p "$REPO" "$CACHE"
WORK="$(mktemp -d "$BUILD_DIR/apt-work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/debs"

# mmdebstrap resolves minbase + the requested packages like a real install
# would (against an empty system), downloads every .deb into the chroot's
# apt cache (seeded from, and copied back to, our cache) and throws the
# chroot away. --skip=essential/unlink keeps the Essential packages' .debs.
INCLUDE="$(comma_list "$IMAGE_PACKAGES" "$REPO_PACKAGES")"
resolve() {
    rm -rf "${WORK:?}/debs" "$WORK/lists" && mkdir -p "$WORK/debs" "$WORK/lists"
    local mirrors=()
    while IFS= read -r line; do mirrors+=("$line"); done <<<"$SOURCES"
    mmdebstrap --variant=minbase --mode=root --format=null \
        --skip=essential/unlink \
        --aptopt='Acquire::Retries "3"' \
        --include="$INCLUDE" \
        --setup-hook="mkdir -p \"\$1/var/cache/apt/archives\"" \
        --setup-hook="sync-in $CACHE /var/cache/apt/archives" \
        --customize-hook="sync-out /var/cache/apt/archives $WORK/debs" \
        --customize-hook="sync-out /var/lib/apt/lists $WORK/lists" \
        "$RELEASE" /dev/null "${mirrors[@]}" >"$WORK/mmdebstrap.log" 2>&1 || {
            tail -n 20 "$WORK/mmdebstrap.log" >&2
            return 1
        }
}
log "$RELEASE: resolving and downloading minbase + $(echo "$IMAGE_PACKAGES $REPO_PACKAGES" | wc -w) packages"
retry 3 resolve || die "$RELEASE: mmdebstrap failed (network or archive problem?)"

shopt -s nullglob
new=("$WORK"/debs/*.deb)
[ "${#new[@]}" -gt 50 ] || die "$RELEASE: only ${#new[@]} .debs downloaded; something is wrong (see above)"

# Refresh the cache, then make the repo hold exactly the new set. The repo
# directory itself is updated in place (not swapped) because running fleet
# containers bind-mount it.
cp -n "${new[@]}" "$CACHE"/
declare -A keep=()
for f in "${new[@]}"; do keep["$(basename "$f")"]=1; done
for f in "$REPO"/*.deb; do
    [ -n "${keep[$(basename "$f")]:-}" ] || rm -f "$f"
done
for f in "${new[@]}"; do
    b="$(basename "$f")"
    [ -e "$REPO/$b" ] || cp "$f" "$REPO/$b"
done
# Prune cache entries that are no longer in the repo (keeps the cache bounded).
for f in "$CACHE"/*.deb; do
    [ -n "${keep[$(basename "$f")]:-}" ] || rm -f "$f"
done

# Override file (package priority section) from the archive's own indices:
# many .debs carry no Priority field (the archive sets it), and without
# "Priority: required" mmdebstrap's minbase would e.g. leave apt out.
for f in "$WORK"/lists/*_Packages*; do
    /usr/lib/apt/apt-helper cat-file "$f"
done | awk '
    /^Package: / { p = $2 }
    /^Priority: / { pr = $2 }
    /^Section: / { se = $2 }
    /^$/ { if (p != "") print p, (pr ? pr : "optional"), (se ? se : "misc"); p = pr = se = "" }
    END { if (p != "") print p, (pr ? pr : "optional"), (se ? se : "misc") }
' | sort -u -k1,1 > "$WORK/override"
[ -s "$WORK/override" ] || die "$RELEASE: no package indices captured from the archive"

# Flat repository index: Packages(.gz) + a Release file with checksums
# (the hosts use [trusted=yes], so it is not signed).
(
    cd "$REPO"
    dpkg-scanpackages --multiversion . "$WORK/override" > Packages.tmp 2>"$WORK/scan.log"
    mv Packages.tmp Packages
    gzip -9nc Packages > Packages.gz
    {
        echo "Origin: beanfleet"
        echo "Label: beanfleet local $RELEASE"
        echo "Suite: $RELEASE"
        echo "Codename: $RELEASE"
        echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
        echo "Architectures: amd64 all"
        echo "Description: beanfleet fleet packages for $RELEASE (built by scripts/apt-repo.sh)"
        echo "SHA256:"
        for f in Packages Packages.gz; do
            printf ' %s %s %s\n' "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "$f"
        done
    } > Release.tmp
    mv Release.tmp Release
)
echo "$INPUTS_HASH" > "$STAMP"
log "$RELEASE: $(grep -c '^Package:' "$REPO/Packages") packages, $(du -sh "$REPO" | cut -f1) in $REPO"
