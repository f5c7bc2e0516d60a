#!/usr/bin/env bash
# The whole test suite: unit tests, pg_regress, isolation tests, pgTAP and
# multi-node TAP tests, the release metadata, then network faults, short
# benchmarks, the TAP tests under ASan, the demo and the Debian packages.
# Run as root on Debian 12: installs what is missing, builds with warnings as
# errors, installs the extension, and runs every suite as the unprivileged
# 'postgres' user in a copy of the tree under /tmp (short socket paths).
# Ends with one line "total: N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
# The locale the expected outputs were made in (initdb and pg_regress inherit
# it; a CI image may set one that is not generated, or messages in another language).
export LANG=C.UTF-8
unset LC_ALL LC_CTYPE LC_COLLATE LC_MESSAGES LC_NUMERIC LC_TIME LANGUAGE
SRC=$(cd "$(dirname "$0")/.." && pwd)
SUITES=${RR_SUITES:-"unit regress isolation pgtap tap meta"}

"$SRC/scripts/deps.sh" || exit 1
# RR_PGROOT=/some/dir: build, install and test against a private copy of
# PostgreSQL there (scripts/private-pg.sh), leaving the system's untouched.
PGBIN=/usr/lib/postgresql/15/bin
[ -n "${RR_PGROOT:-}" ] && { PGBIN=$("$SRC/scripts/private-pg.sh" "$RR_PGROOT") || exit 1; }
export PGBIN CL_PGBIN=$PGBIN PATH=$PGBIN:$PATH

# Build and test in a private copy the postgres user owns (servers refuse to
# run as root), so concurrent runs never share object files or test dirs.
WORK=${RR_TEST_DIR:-$(mktemp -d /tmp/rr-test.XXXXXX)}
rm -rf "$WORK"
mkdir -p "$WORK"
tar -C "$SRC" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='tmp_check*' --exclude=results --exclude=output_iso --exclude=build -cf - . | tar -C "$WORK" -xf -
chown -R postgres:postgres "$WORK"
echo "== build and install (in $WORK)"
if ! make -C "$WORK" -s -j2 WERROR=1 >"$WORK/build.log" 2>&1 || ! make -C "$WORK" -s install >>"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log"
    echo "total: 0 passed, 1 failed"
    exit 1
fi
chown -R postgres:postgres "$WORK"
as_pg() { runuser -u postgres -- env PATH="$PATH" "$@"; }

passed=0; failed=0
add() { passed=$((passed + $1)); failed=$((failed + $2)); }
# Adds a runner's summary line ("NAME: N passed, M failed", NAME matching the
# pattern $1) from file $2 to the totals; a runner that printed none, or that
# exited non-zero ($3) with nothing failed, counts one failure.
tally() {
    local line p f
    line=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed" "$2" | tail -1)
    if [ -z "$line" ]; then
        echo "$1: runner printed no summary (exit $3)"
        add 0 1
        return
    fi
    p=$(sed -E 's/^[^:]+: ([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    [ "$3" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    add "$p" "$f"
}

for suite in $SUITES; do
    echo "== $suite"
    out=$WORK/$suite.out
    as_pg bash "$WORK/scripts/run-$suite.sh" 2>&1 | tee "$out"
    tally '[a-z_-]+' "$out" "${PIPESTATUS[0]}"
done

# Network faults across a veth pair into a network namespace (root only;
# skips with a message where namespaces are refused). RR_NETNS=0 skips it.
if [ "${RR_NETNS:-1}" = 1 ] && [ "$(id -u)" -eq 0 ]; then
    echo "== netns"
    "$WORK/scripts/run-netns.sh" 2>&1 | tee "$WORK/netns.out"
    tally netns "$WORK/netns.out" "${PIPESTATUS[0]}"
fi

# Short versions of the load and soak benchmarks (root: they start their own
# clusters). RR_BENCH=0 skips them. The load run's window is wider than the
# benchmark's 0.6 s: with 32 pgbench clients on two cores the stopping
# replica itself is starved of CPU, and its FATAL can leave 0.9 s after
# pg_ctl was called. The test is that reads leave it, not how fast.
if [ "${RR_BENCH:-1}" = 1 ] && [ "$(id -u)" -eq 0 ]; then
    for b in load soak; do
        echo "== $b (short)"
        if RR_LOAD_BUILD=0 RR_SOAK_BUILD=0 RR_LOAD_SECONDS=8 RR_LOAD_FLAP=2 RR_LOAD_WINDOW=1.5 RR_SOAK_ROUNDS=3000 RR_SOAK_SAMPLE=500 \
            RR_SOAK_WARMUP=1000 "$WORK/bench/$b" >"$WORK/$b.out" 2>&1; then
            tail -4 "$WORK/$b.out"
            echo "$b: 1 passed, 0 failed"
            add 1 0
        else
            tail -30 "$WORK/$b.out"
            echo "$b: 0 passed, 1 failed"
            add 0 1
        fi
    done
fi

# The TAP suite once more against an ASan + UBSan build of the extension;
# the normal build is reinstalled afterwards. RR_ASAN=0 skips it.
if [ "${RR_ASAN:-1}" = 1 ] && [ "$(id -u)" -eq 0 ] && [[ " $SUITES " == *" tap "* ]]; then
    echo "== asan"
    san="-fsanitize=address,undefined -fno-omit-frame-pointer"
    if make -C "$WORK" -s clean >/dev/null 2>&1 &&
        make -C "$WORK" -s -j2 WERROR=1 EXTRA_CXXFLAGS="$san" EXTRA_LDFLAGS="-fsanitize=address,undefined" \
            >"$WORK/asan-build.log" 2>&1 && make -C "$WORK" -s install >>"$WORK/asan-build.log" 2>&1; then
        chown -R postgres:postgres "$WORK"
        as_pg bash "$WORK/scripts/run-asan.sh" 2>&1 | tee "$WORK/asan.out"
        tally asan "$WORK/asan.out" "${PIPESTATUS[0]}"
    else
        cat "$WORK/asan-build.log"
        add 0 1
    fi
    make -C "$WORK" -s clean >/dev/null 2>&1
    make -C "$WORK" -s -j2 WERROR=1 >/dev/null 2>&1 && make -C "$WORK" -s install >/dev/null 2>&1 || add 0 1
fi

# The README's demo command, once, headless (it runs as root and starts its
# servers as postgres itself). RR_SKIP_DEMO=1 skips it.
if [ "${RR_SKIP_DEMO:-0}" != 1 ] && [ "$(id -u)" -eq 0 ]; then
    echo "== demo"
    if "$WORK/scripts/demo.sh" --headless >"$WORK/demo.out" 2>&1; then
        tail -5 "$WORK/demo.out"
        echo "demo: 1 passed, 0 failed"
        add 1 0
    else
        tail -40 "$WORK/demo.out"
        echo "demo: 0 passed, 1 failed"
        add 0 1
    fi
fi

# The Debian packages (scripts/run-package.sh): built and linted, installed
# into the system's PostgreSQL, the demo and the README's install section run
# against them. Root only, and not with RR_PGROOT (packages install into the
# system's PostgreSQL, not a private copy). Last, so the packaged files
# replace the build installed above only after every other suite has run; the
# packages stay installed. RR_PACKAGE=0 skips it.
if [ "${RR_PACKAGE:-1}" = 1 ] && [ "$(id -u)" -eq 0 ] && [ -z "${RR_PGROOT:-}" ]; then
    echo "== package"
    RR_PACKAGE_OUT="$WORK/package" "$SRC/scripts/run-package.sh" 2>&1 | tee "$WORK/package.out"
    tally package "$WORK/package.out" "${PIPESTATUS[0]}"
fi

echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
