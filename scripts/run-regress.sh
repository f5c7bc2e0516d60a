#!/usr/bin/env bash
# pg_regress against a temporary instance with the library preloaded
# (PGXS's installcheck with only REGRESS: the isolation and TAP tests have
# runners of their own, scripts/run-isolation.sh and scripts/run-tap.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
make -s installcheck ISOLATION= TAP_TESTS= >regress.log 2>&1
rc=$?
cat regress.log
[ -f regression.diffs ] && head -200 regression.diffs
p=$(grep -cE '^ok ' regress.log)
f=$(grep -cE '^not ok ' regress.log)
# Older pg_regress prints "test x ... ok"
if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    p=$(grep -cE '\.\.\. +ok' regress.log); f=$(grep -cE '\.\.\. +FAILED' regress.log)
fi
[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
echo "regress: $p passed, $f failed"
[ "$rc" -eq 0 ]
