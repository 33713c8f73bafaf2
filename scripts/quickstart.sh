#!/usr/bin/env bash
# Sets up and runs quell on its embedded default: SQLite and a local lab (a Samba AD DC
# on 127.0.0.1 with a few demo users), quelld in the background, an admin token, and
# the next commands to try.   scripts/quickstart.sh [stop]
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
lab=$top/lab
build=$top/build/release
port=${QUELL_PORT:-8443}

if [ "${1:-}" = stop ]; then
	[ -f "$lab/quelld.pid" ] && kill "$(cat "$lab/quelld.pid")" 2>/dev/null || true
	bash scripts/lab/samba.sh down "$lab/samba" || true
	rm -f "$lab/quelld.pid"
	echo "quell stopped (data kept in $lab)"
	exit 0
fi

bash scripts/deps.sh
echo "== building"
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" >/dev/null

echo "== starting the lab domain controller (QUELL.TEST on 127.0.0.1)"
mkdir -p "$lab"
bash scripts/lab/samba.sh up "$lab/samba"
bash scripts/lab/samba.sh seed "$lab/samba" >/dev/null
# shellcheck disable=SC1091
. "$lab/samba/env"

if [ ! -f "$lab/quelld.conf" ]; then
	cat >"$lab/quelld.conf" <<CONF
[server]
listen = 127.0.0.1:$port

[store]
path = $lab/quell.db

[system "corp"]
kind = ad
url = $LAB_LDAP_URL
ca_file = $LAB_CA
base_dn = $LAB_BASE_DN
bind_dn = $LAB_BIND_DN
password_file = $LAB_BIND_PW_FILE

# The README's alert example: a confident ransomware alert contains its identities.
[disruption "contain-ransomware"]
categories = ransomware credential_theft
min_severity = high
min_confidence = 80
actions = contain
CONF
fi
if [ ! -s "$lab/admin.token" ]; then
	(umask 077 && "$build/src/daemon/quelld" -c "$lab/quelld.conf" token create \
	    --name quickstart-admin --role admin >"$lab/admin.token")
fi

if [ -f "$lab/quelld.pid" ] && kill -0 "$(cat "$lab/quelld.pid")" 2>/dev/null; then
	echo "== quelld already running (pid $(cat "$lab/quelld.pid"))"
else
	echo "== starting quelld on 127.0.0.1:$port (log: $lab/quelld.log)"
	"$build/src/daemon/quelld" -c "$lab/quelld.conf" >>"$lab/quelld.log" 2>&1 &
	echo $! >"$lab/quelld.pid"
	for _ in $(seq 50); do
		curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null ||
		{ echo "quelld did not start; see $lab/quelld.log" >&2; exit 1; }
fi

export QUELL_URL=http://127.0.0.1:$port QUELL_TOKEN_FILE=$lab/admin.token
"$build/src/cli/quell" sync corp

cat <<MSG

quell is running. Admin token (kept in $lab/admin.token):
  $(cat "$lab/admin.token")

Console: $QUELL_URL/ (sign in with the token)

Try:
  export QUELL_URL=$QUELL_URL QUELL_TOKEN_FILE=$QUELL_TOKEN_FILE PATH=$build/src/cli:\$PATH
  quell identities alice
  quell disable alice --reason "suspicious sign-in" --wait
  KRB5_CONFIG=$KRB5_CONFIG kinit alice@QUELL.TEST   # password: $(cat "$lab/samba/user.pw" 2>/dev/null || echo see lab) -> revoked
  quell enable alice --reason "cleared" --yes --wait
  quell actions
  quell audit verify
Stop everything: scripts/quickstart.sh stop
MSG
