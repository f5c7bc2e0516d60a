#!/usr/bin/env bash
# Unit tests of src/core (no server headers, no server): lag history, routing,
# decisions, conninfo rules, the text rules; every core file is compiled in.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
if ! g++ -std=c++20 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-omit-frame-pointer \
        -Isrc/core -I"$(pg_config --includedir)" test/unit/unit_tests.cpp src/core/*.cpp -lpq \
        -o "$out/unit_tests"; then
    echo "unit: 0 passed, 1 failed"
    exit 1
fi
"$out/unit_tests"
rc=$?
rm -rf "$out"
exit $rc
