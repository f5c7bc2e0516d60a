#!/usr/bin/env bash
# Makes a private copy of Debian's PostgreSQL 15 under ROOT (default
# $RR_PGROOT) so that a test run can install the extension without touching
# the system's copy: concurrent runs (helpers, a CI simulation beside
# development) then never load each other's build. PostgreSQL finds its share
# and lib directories relative to its binaries, so the copy is self-contained;
# headers and libpq stay shared (symlinks). Prints the copy's bin directory.
set -euo pipefail
ROOT=${1:-${RR_PGROOT:?usage: private-pg.sh ROOT}}
BIN=$ROOT/usr/lib/postgresql/15/bin
if [ ! -x "$BIN/postgres" ]; then
    mkdir -p "$ROOT/usr/lib/postgresql" "$ROOT/usr/share/postgresql"
    cp -a /usr/lib/postgresql/15 "$ROOT/usr/lib/postgresql/"
    cp -a /usr/share/postgresql/15 "$ROOT/usr/share/postgresql/"
fi
[ -e "$ROOT/usr/include" ] || ln -s /usr/include "$ROOT/usr/include"
[ -e "$ROOT/usr/lib/x86_64-linux-gnu" ] || ln -s /usr/lib/x86_64-linux-gnu "$ROOT/usr/lib/x86_64-linux-gnu"
chmod 755 "$ROOT" "$ROOT/usr" 2>/dev/null || true
echo "$BIN"
