#!/usr/bin/env bash
# Installs what quell needs on Debian 12, from Debian's own packages: to build and run
# it, and with --test also what its tests use (pytest, Node.js, Prism and the vendor
# SDKs pinned in tests/contract). Safe to run again: it installs only what is missing.
#   scripts/deps.sh [--test]
set -euo pipefail
tests=no
[ "${1:-}" = --test ] && tests=yes

pkgs=(
  build-essential meson ninja-build pkg-config
  libmicrohttpd-dev libcurl4-openssl-dev libldap-dev libsqlite3-dev libpq-dev
  libjansson-dev libssl-dev libsodium-dev libsystemd-dev libcmocka-dev libseccomp-dev
  samba samba-ad-provision samba-dsdb-modules samba-vfs-modules
  krb5-user ldap-utils sqlite3 openssl curl ca-certificates
)
if [ "$tests" = yes ]; then
  pkgs+=(python3 python3-pytest iproute2 util-linux chromium prometheus rsyslog rsyslog-openssl wrk)
  # PostgreSQL 15: the store's suite and the nodes sharing a database (scripts/lib/pg.sh).
  pkgs+=(postgresql-15 postgresql-client-15)
  # The man pages' lint, the Debian package's build and lint, the unit's checks
  # (systemd-analyze) and the fresh root file system the package is installed in.
  pkgs+=(mandoc man-db debhelper dpkg-dev fakeroot lintian systemd mmdebstrap)
  # The fuzz harnesses: clang (14) and its libFuzzer runtime, which Debian's clang
  # only recommends (and recommends are not installed here).
  pkgs+=(clang libclang-rt-14-dev)
  # Node.js runs the Graph and Okta emulators and Prism; a machine that already has a
  # node and npm (of any origin) keeps them.
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages (installing them needs root): ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "deps.sh: installed ${missing[*]}"
fi
[ "$tests" = yes ] || exit 0

# Prism (the vendors' contracts), the vendor SDKs the benchmarks compare with and
# playwright-core (drives Debian's chromium in tests/web), pinned in tests/contract/package-lock.json.
contract=$(dirname "$0")/../tests/contract
if [ ! -x "$contract/node_modules/.bin/prism" ] ||
    [ ! -d "$contract/node_modules/playwright-core" ]; then
  (cd "$contract" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "deps.sh: installed the npm packages of tests/contract"
fi
