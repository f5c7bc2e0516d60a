#!/usr/bin/env bash
# Unit tests of the C++-only sources (no server): lag history, routing, conninfo.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
if ! g++ -std=c++20 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-omit-frame-pointer \
        -I"$(pg_config --includedir)" test/unit/unit_tests.cpp src/lag.cpp src/routing.cpp src/hint.cpp \
        src/conninfo.cpp -lpq -o "$out/unit_tests"; then
    echo "unit: 0 passed, 1 failed"
    exit 1
fi
"$out/unit_tests"
rc=$?
rm -rf "$out"
exit $rc
