#!/usr/bin/env bash
# The Debian packages, as a DBA gets them (root, Debian 12, the system's
# PostgreSQL 15): scripts/build-deb.sh builds them and lintian finds no error;
# apt-get installs them (--reinstall: a `make install` of the same version
# may have overwritten their files); dpkg --verify shows every extension file
# and program is the package's; the demo runs headless against the installed
# package without building (RR_DEMO_BUILD=0); scripts/install-walkthrough.sh
# follows the README's install section with Debian's cluster tools.
# The packages stay installed afterwards (the system's PostgreSQL then has
# the packaged extension); every server started here is stopped.
# Ends with "package: N passed, N failed".
#
#   RR_PACKAGE_OUT   where the .deb files and logs go (default: a new /tmp directory)
set -uo pipefail
export LANG=C.UTF-8
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${RR_PACKAGE_OUT:-$(mktemp -d /tmp/rr-package.XXXXXX)}
mkdir -p "$OUT"
PGBIN=/usr/lib/postgresql/15/bin
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; }
summary() { echo "package: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }
secs() { echo "$((SECONDS - $1)) s"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "run-package: run as root (it installs into the system's PostgreSQL)"
    not_ok "running as root"; summary
fi

# --- Build and lint.
t=$SECONDS
if "$SRC/scripts/build-deb.sh" "$OUT" >"$OUT/build.out" 2>&1; then
    sed -n '/^build-deb: lintian/,$p' "$OUT/build.out"
    ok "scripts/build-deb.sh: packages built, lintian shows no error ($(secs $t))"
else
    tail -n 60 "$OUT/build.out"
    not_ok "scripts/build-deb.sh ($(secs $t))"; summary
fi
mapfile -t DEBS < <(sed -n '/^packages:$/,$p' "$OUT/build.out" | sed -n 's/^\(\/[^ ]*\.deb\) .*/\1/p')
[ "${#DEBS[@]}" -ge 2 ] && ok "${#DEBS[@]} packages: $(for d in "${DEBS[@]}"; do basename "$d"; done | tr '\n' ' ')" \
    || { not_ok "two packages built (found ${#DEBS[@]})"; summary; }
NAMES=()
for d in "${DEBS[@]}"; do NAMES+=("$(dpkg-deb -f "$d" Package)"); done

# --- Install.
t=$SECONDS
if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall --no-install-recommends \
        -o DPkg::Lock::Timeout=600 "${DEBS[@]}" >"$OUT/install.out" 2>&1; then
    ok "apt-get install ${NAMES[*]} ($(secs $t))"
else
    tail -n 30 "$OUT/install.out"
    not_ok "apt-get install ${NAMES[*]}"; summary
fi
# The files the server loads are the package's, unchanged.
verify() {
    local f owner bad=0
    for f in "$PGBIN/../lib/replica_router.so" /usr/share/postgresql/15/extension/replica_router*; do
        f=$(readlink -f "$f")
        owner=$(dpkg -S "$f" 2>/dev/null | cut -d: -f1)
        case " ${NAMES[*]} " in *" $owner "*) ;; *) echo "$f: not from the packages (${owner:-no package})"; bad=1 ;; esac
    done
    dpkg --verify "${NAMES[@]}" || bad=1
    return $bad
}
if out=$(verify 2>&1); then ok "library, control file and SQL scripts are the package's (dpkg -S, dpkg --verify)"
else not_ok "installed files are the package's"; sed 's/^/    /' <<<"$out"; fi
# Every program the tools package ships is on PATH.
progs=$(dpkg -L "${NAMES[@]}" | grep '^/usr/bin/' || true)
missing=""
# (found from a plain PATH: the suite puts PostgreSQL's bindir first)
for p in $progs; do [ "$(PATH=/usr/local/bin:/usr/bin:/bin command -v "$(basename "$p")")" = "$p" ] && [ -x "$p" ] || missing+=" $p"; done
if [ -n "$progs" ] && [ -z "$missing" ]; then ok "programs on PATH:$(for p in $progs; do printf ' %s' "$(basename "$p")"; done)"
else not_ok "programs on PATH (missing:${missing:- none shipped})"; fi

# --- The demo against the installed package (no build; its own ports and
# directory, so a concurrent demo of the source tree is not disturbed).
t=$SECONDS
if RR_DEMO_BUILD=0 CL_PGBIN=$PGBIN RR_DEMO_DIR=/tmp/rr-pkgdemo RR_DEMO_PORT=55470 \
        "$SRC/scripts/demo.sh" --headless >"$OUT/demo.out" 2>&1 &&
        grep -q 'Build and install skipped' "$OUT/demo.out"; then
    ok "demo.sh --headless against the installed package ($(secs $t))"
else
    tail -n 40 "$OUT/demo.out"
    not_ok "demo.sh --headless against the installed package ($(secs $t))"
fi
if out=$(dpkg --verify "${NAMES[@]}" 2>&1); then ok "the package's files are unchanged after the demo"
else not_ok "the package's files are unchanged after the demo"; sed 's/^/    /' <<<"$out"; fi

# --- The README's install section with Debian's cluster tools.
t=$SECONDS
"$SRC/scripts/install-walkthrough.sh" >"$OUT/walkthrough.out" 2>&1
sed 's/^/  /' "$OUT/walkthrough.out"
# Each of its checks counts.
line=$(grep -E '^walkthrough: [0-9]+ passed, [0-9]+ failed' "$OUT/walkthrough.out" | tail -n 1)
if [ -n "$line" ]; then
    read -r wp wf < <(sed -E 's/^walkthrough: ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/' <<<"$line")
    passed=$((passed + wp)) failed=$((failed + wf))
    echo "walkthrough took $(secs $t)"
else
    not_ok "the README's install section on Debian clusters: no summary ($(secs $t))"
fi

summary
