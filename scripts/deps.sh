#!/usr/bin/env bash
# Installs what building, testing and the demo need (Debian 12, as root).
# Quiet and quick when everything is already there.
set -euo pipefail
PKGS=(g++ make cmake pkg-config postgresql-15 postgresql-server-dev-15 libpq-dev libboost-dev
      libipc-run-perl postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl pgbouncer
      perl iproute2 nftables procps
      libcpp-httplib-dev nlohmann-json3-dev prometheus haproxy chromium python3-psycopg apache2-utils systemd
      python3-sqlalchemy python3-django python3-psycopg2)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A freshly booted machine may have apt-daily holding the dpkg lock, and a
# mirror may fail once: wait for the lock, retry downloads.
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
apt-get "${APT_OPTS[@]}" update -qq
apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's package starts nothing here (no systemd), but be sure no default
# cluster holds port 5432 or the tests' ports.
pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
