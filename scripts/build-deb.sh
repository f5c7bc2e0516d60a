#!/usr/bin/env bash
# Builds the Debian packages (debian/: postgresql-15-replica-router and
# replica-router-tools) with dpkg-buildpackage -us -uc -b in a copy of the
# tree, so the checkout stays clean, and checks them with lintian: any error
# fails, warnings are printed.
#
#   scripts/build-deb.sh [OUTDIR]    the .deb files land in OUTDIR (default: dist/
#                                    in the checkout, which git ignores)
#
# As root it installs what is missing to build (apt-get build-dep on the
# copy, plus lintian); otherwise it says what to install. Prints the paths of
# the built packages, one a line, after "packages:".
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$SRC/dist}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

version=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version 2>/dev/null) ||
    version=$(sed -n '1s/.*(\(.*\)).*/\1/p' "$SRC/debian/changelog")
WORK=$(mktemp -d /tmp/rr-deb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
TREE=$WORK/replica-router-$version
mkdir -p "$TREE"
# The files of the tree as they are now (committed or not), without build
# products.
tar -C "$SRC" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' --exclude='tmp_check*' \
    --exclude=results --exclude=output_iso --exclude=build --exclude=dist --exclude=log \
    --exclude=tools/replica_router_check --exclude=tools/replica_router_follower --exclude=tools/replica_router \
    --exclude=tools/cli/obj -cf - . | tar -C "$TREE" -xf -

# Build dependencies (debian/control's Build-Depends) and lintian.
if ! (cd "$TREE" && dpkg-checkbuilddeps >/dev/null 2>&1) || ! command -v lintian >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        (cd "$TREE" && dpkg-checkbuilddeps) || true
        echo "build-deb: install the build dependencies above and lintian (as root: apt-get build-dep ./ in the checkout)" >&2
        exit 1
    fi
    echo "build-deb: installing the build dependencies and lintian"
    export DEBIAN_FRONTEND=noninteractive
    APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    apt-get "${APT_OPTS[@]}" update -qq
    apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends dpkg-dev lintian >/dev/null
    apt-get "${APT_OPTS[@]}" build-dep -y -qq --no-install-recommends "$TREE" >/dev/null
fi

jobs=$(nproc 2>/dev/null || echo 2)
echo "build-deb: dpkg-buildpackage -us -uc -b in $TREE (log: $OUT/build-deb.log)"
if ! (cd "$TREE" && DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b) \
        >"$OUT/build-deb.log" 2>&1; then
    tail -n 60 "$OUT/build-deb.log"
    echo "build-deb: dpkg-buildpackage failed" >&2
    exit 1
fi

# What this source builds, by name, from the generated debian/control.
mapfile -t names < <(sed -n 's/^Package: //p' "$TREE/debian/control")
debs=()
for n in "${names[@]}"; do
    f=$(ls "$WORK"/"${n}"_"${version}"_*.deb 2>/dev/null | head -n 1)
    [ -n "$f" ] || { echo "build-deb: $n was not built" >&2; exit 1; }
    cp "$f" "$OUT/"
    debs+=("$OUT/$(basename "$f")")
done

# lintian on the .changes (the binary packages and the build info) as the
# archive would run it; errors fail the build, everything else is shown.
changes=$(ls "$WORK"/*.changes | head -n 1)
lintian --tag-display-limit 0 --display-info "$changes" >"$OUT/lintian.txt" 2>&1 || true
if [ -s "$OUT/lintian.txt" ]; then
    echo "build-deb: lintian says:"
    sed 's/^/  /' "$OUT/lintian.txt"
else
    echo "build-deb: lintian: no tags"
fi
if grep -q '^E: ' "$OUT/lintian.txt"; then
    echo "build-deb: lintian reported errors" >&2
    exit 1
fi

echo "packages:"
for f in "${debs[@]}"; do
    printf '%s (%s bytes, %s installed)\n' "$f" "$(stat -c %s "$f")" \
        "$(dpkg-deb -f "$f" Installed-Size) KiB"
done
