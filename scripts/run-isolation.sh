#!/usr/bin/env bash
# Isolation tests with pg_isolation_regress (specs/*.spec, expected outputs
# expected/isolation_*.out): concurrent registry and route changes from two
# or three sessions, against a temporary instance with the library preloaded
# (test/regress.conf, as for pg_regress). Runs PGXS's installcheck with only
# ISOLATION (no REGRESS, no TAP_TESTS). Ends with one line
# "isolation: N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
make -s installcheck REGRESS= TAP_TESTS= >isolation.log 2>&1
rc=$?
cat isolation.log
[ -f output_iso/regression.diffs ] && head -200 output_iso/regression.diffs
p=$(grep -cE '^ok ' isolation.log)
f=$(grep -cE '^not ok ' isolation.log)
# PostgreSQL 15's pg_isolation_regress prints "test x ... ok"
if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    p=$(grep -cE '\.\.\. +ok' isolation.log); f=$(grep -cE '\.\.\. +FAILED' isolation.log)
fi
[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
echo "isolation: $p passed, $f failed"
[ "$rc" -eq 0 ]
