#!/usr/bin/env bash
# Multi-node TAP tests (test/tap/*.pl, helpers in test/tap/RRTest.pm) with
# PostgreSQL::Test::Cluster, run by prove. Run as an unprivileged user
# (scripts/test.sh uses 'postgres') in a tree the user owns. Ends with one
# line "tap: N passed, N failed", N counting assertions; exits non-zero on any
# failure. (make installcheck runs the same files through PGXS's
# prove_installcheck: TAP_TESTS in the Makefile.)
#
#   RR_TAP_TESTS   test files to run (default: test/tap/*.pl)
#   RR_TAP_JOBS    prove -j (default 1: the timing assertions want the CPU)
#   PG_TEST_NOCLEAN=1 keeps the clusters' data directories
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# pg_config --pgxs names <pgxs>/src/makefiles/pgxs.mk
PGXS_DIR=$(dirname "$(dirname "$(dirname "$("$PGBIN/pg_config" --pgxs 2>/dev/null || echo /x/x/x/x)")")")
[ -d "$PGXS_DIR/src/test/perl" ] || PGXS_DIR=/usr/lib/postgresql/15/lib/pgxs
export PATH="$PGBIN:$PATH"
# PostgreSQL::Test::{Cluster,Utils}, and test/tap for RRTest.pm.
export PERL5LIB="$PGXS_DIR/src/test/perl:$ROOT/test/tap${PERL5LIB:+:$PERL5LIB}"
# Cluster::init runs "$PG_REGRESS --config-auth"; Utils puts tmp_check/ under TESTDIR.
export PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress"
export TESTDIR="$ROOT/test/tap"
export TESTDATADIR="$TESTDIR/tmp_check"
# A generous ceiling for PostgreSQL::Test waits (poll_query_until, psql);
# the tests' own deadlines are much shorter.
export PG_TEST_TIMEOUT_DEFAULT=${PG_TEST_TIMEOUT_DEFAULT:-60}
unset PGHOST PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS

if [ ! -x "$PG_REGRESS" ]; then
    echo "pg_regress not found at $PG_REGRESS (postgresql-server-dev-15)"
    echo "tap: 0 passed, 1 failed"
    exit 1
fi
if ! perl -MIPC::Run -e1 2>/dev/null; then
    echo "IPC::Run is missing (libipc-run-perl)"
    echo "tap: 0 passed, 1 failed"
    exit 1
fi

# shellcheck disable=SC2206
tests=(${RR_TAP_TESTS:-test/tap/*.pl})
if [ ${#tests[@]} -eq 0 ] || [ ! -e "${tests[0]}" ]; then
    echo "no TAP tests found"
    echo "tap: 0 passed, 1 failed"
    exit 1
fi

rm -rf "$TESTDIR/tmp_check"
log=$(mktemp)
start=$(date +%s)
prove --verbose --timer --jobs "${RR_TAP_JOBS:-1}" "${tests[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
elapsed=$(( $(date +%s) - start ))

# Assertions at the top level of each file's TAP stream ("ok 3 - ...",
# "not ok 4 - ..."); a failing TODO test is an expected failure, not a failure.
passed=$(grep -cE '^ok [0-9]+' "$log")
todo=$(grep -cE '^not ok [0-9]+.*# TODO' "$log")
failed=$(grep -E '^not ok [0-9]+' "$log" | grep -cvE '# TODO')
passed=$((passed + todo))
# A file that died, or ran fewer tests than planned, without a failed
# assertion: prove's summary lists it with "Failed: 0".
# (A summary entry followed only by "TODO passed" is a success.)
broken=$(awk '/\(Wstat: [0-9]+.*Tests: [0-9]+ Failed: 0\)/ { if (pending) n++; pending = 1; next }
              pending && /TODO passed/ { pending = 0; next }
              pending && /^[^ ]/ { n++; pending = 0 }
              END { if (pending) n++; print n + 0 }' "$log")
failed=$((failed + broken))
[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1

# For each file that failed: the tail of its test log and of its primary's server log.
for t in $(grep -oE '^[^ ]+\.pl +\(Wstat' "$log" | awk '{print $1}'); do
    name=$(basename "$t" .pl)
    for f in "$TESTDIR/tmp_check/log/regress_log_$name" "$TESTDIR/tmp_check/log/${name}_primary.log"; do
        [ -f "$f" ] || continue
        echo "---- tail of $f"
        tail -n 40 "$f"
    done
done
rm -f "$log"
echo "tap run took ${elapsed}s"
echo "tap: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
