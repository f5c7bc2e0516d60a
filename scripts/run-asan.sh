#!/usr/bin/env bash
# The TAP suite against an ASan + UBSan build of the extension (installed by
# scripts/test.sh before this runs). Leak checking is off (PostgreSQL frees
# memory by context, not before exit). Any sanitizer report that names
# replica_router fails the run. Ends with "asan: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
reports=$(mktemp -d /tmp/rr-asan-reports.XXXXXX)
# The runtime comes in with the extension when the server loads it (no
# LD_PRELOAD: initdb and the test harness stay uninstrumented), so ASan checks
# the extension's own stack, globals and instrumented accesses; UBSan is complete.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$reports/asan:verify_asan_link_order=0"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/ubsan"
# The extension's own tests: the client program's (072 and 085-089: check,
# follow, serve, Prometheus, HAProxy, the example, the README's examples)
# exercise a program this build does not instrument.
if [ -z "${RR_TAP_TESTS:-}" ]; then
    RR_TAP_TESTS=$(ls test/tap/*.pl | grep -Ev '/(072|085|086|087|088|089)_' | tr '\n' ' ')
    export RR_TAP_TESTS
fi
bash scripts/run-tap.sh > asan-tap.out 2>&1
rc=$?
line=$(grep -E '^tap: [0-9]+ passed, [0-9]+ failed' asan-tap.out | tail -1)
p=$(sed -E 's/^tap: ([0-9]+) passed.*/\1/' <<<"${line:-tap: 0 passed, 1 failed}")
f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"${line:-tap: 0 passed, 1 failed}")
grep -E '^(not ok|#   Failed)' asan-tap.out | head -20
# Reports that concern replica_router (the uninstrumented server and tools may
# produce none; anything at all is shown).
nrep=0
for r in "$reports"/*; do
    [ -f "$r" ] || continue
    if grep -q "replica_router" "$r"; then
        echo "---- sanitizer report $r"
        head -40 "$r"
        nrep=$((nrep + 1))
    fi
done
echo "sanitizer reports naming replica_router: $nrep"
[ "$nrep" -gt 0 ] && f=$((f + nrep))
[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
echo "asan: $p passed, $f failed"
[ "$f" -eq 0 ]
