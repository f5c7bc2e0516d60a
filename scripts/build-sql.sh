#!/usr/bin/env bash
# Builds the extension's update scripts from their sources:
# extension/updates/A--B.sql becomes extension/replica_router--A--B.sql, each
# line "-- @include objects/NAME.sql" replaced by that file. An object changed
# since 1.0 has its current definition in extension/objects/ (one place to
# read and edit it); the update that changes it includes it instead of
# copying it. make (and CMake) run this. Once a version is released its update
# script is frozen: the built file is committed and its source leaves
# extension/updates/.
#   --check   build into a temporary directory and fail when a built file in
#             extension/ differs from its sources
set -euo pipefail
cd "$(dirname "$0")/../extension"
check=0
[ "${1:-}" = --check ] && check=1
status=0
for src in updates/*.sql; do
    [ -e "$src" ] || continue
    name=replica_router--$(basename "$src")
    out=$(mktemp)
    {
        echo "-- Built from extension/$src by scripts/build-sql.sh: edit that file and extension/objects/."
        while IFS= read -r line || [ -n "$line" ]; do
            if [[ $line =~ ^--\ @include\ (objects/[A-Za-z0-9_.-]+\.sql)$ ]]; then
                cat "${BASH_REMATCH[1]}"
            else
                printf '%s\n' "$line"
            fi
        done <"$src"
    } >"$out"
    if [ $check = 1 ]; then
        if ! cmp -s "$out" "$name"; then
            echo "extension/$name is not built from extension/$src (run scripts/build-sql.sh)" >&2
            status=1
        fi
        rm -f "$out"
    else
        mv "$out" "$name"
        chmod 644 "$name"
    fi
done
exit $status
