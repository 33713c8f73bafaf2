#!/usr/bin/env bash
# A throwaway Samba AD DC (realm QUELL.TEST) on 127.0.0.1 for quell's integration tests
# and benchmarks. Everything lives in one directory; nothing system-wide is touched.
# Facts behind the choices: /work/shared/lab/SAMBA.md.
#
#   samba.sh up DIR                          provision (once), then start and wait for LDAP
#   samba.sh down DIR                        stop the recorded samba
#   samba.sh seed DIR                        demo users (password in DIR/user.pw)
#   samba.sh adduser DIR SAM CN PASSWORD [UAC]   one user; prints its objectGUID
#   samba.sh users DIR N PREFIX [nopw]       N users PREFIX0001.. in one LDAP session
set -euo pipefail

REALM=QUELL.TEST
BASE_DN='DC=quell,DC=test'
BIND_DN="CN=Administrator,CN=Users,$BASE_DN"
SEED_PASSWORD='Quell-Seed-Pw1'

die() { echo "samba.sh: $*" >&2; exit 1; }

usage() {
	sed -n '2,11p' "$0" >&2
	exit 2
}

absdir() {
	mkdir -p "$1"
	(cd "$1" && pwd)
}

running() {
	local pid
	[[ -f $D/samba.pid ]] || return 1
	pid=$(<"$D/samba.pid")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

ldap_answers() {
	ldapsearch -x -H ldap://127.0.0.1 -s base -b '' -o nettimeout=2 namingContexts \
	    >/dev/null 2>&1
}

# Over LDAPS with this lab's own CA: another lab on 127.0.0.1 does not count.
ldap_ready() {
	LDAPTLS_CACERT=$D/tls/ca.pem LDAPTLS_REQCERT=demand ldapsearch -x \
	    -H ldaps://127.0.0.1 -s base -b '' -o nettimeout=2 namingContexts >/dev/null 2>&1
}

# Every LDAP write goes through LDAPS with the lab CA: unicodePwd needs an encrypted
# connection, and it exercises the same TLS path quell uses.
lmod() {
	LDAPTLS_CACERT=$D/tls/ca.pem LDAPTLS_REQCERT=demand ldapmodify -x -H ldaps://127.0.0.1 \
	    -D "$BIND_DN" -y "$D/admin.pw" "$@"
}

lsearch() {
	LDAPTLS_CACERT=$D/tls/ca.pem LDAPTLS_REQCERT=demand ldapsearch -LLL -o ldif-wrap=no \
	    -x -H ldaps://127.0.0.1 -D "$BIND_DN" -y "$D/admin.pw" "$@"
}

b64() { printf '%s' "$1" | base64 -w0; }

# RFC 4514 escaping of one attribute value, for the CN of a DN.
dn_escape() {
	local v=$1 out
	out=$(printf '%s' "$v" | sed -e 's/\\/\\\\/g' -e 's/[,+"<>;=]/\\&/g')
	case $out in
	'#'*|' '*) out="\\$out" ;;
	esac
	case $out in
	*' ') out="${out% }\\ " ;;
	esac
	printf '%s' "$out"
}

unicodepwd() { printf '"%s"' "$1" | iconv -f UTF-8 -t UTF-16LE | base64 -w0; }

# AD shows objectGUID with its first three fields little-endian.
guid_text() {
	local h
	h=$(printf '%s' "$1" | base64 -d | od -An -v -tx1 | tr -d ' \n')
	[[ ${#h} -eq 32 ]] || die "bad objectGUID"
	printf '%s%s%s%s-%s%s-%s%s-%s-%s\n' "${h:6:2}" "${h:4:2}" "${h:2:2}" "${h:0:2}" \
	    "${h:10:2}" "${h:8:2}" "${h:14:2}" "${h:12:2}" "${h:16:4}" "${h:20:12}"
}

user_exists() {
	lsearch -b "CN=Users,$BASE_DN" -s one "(sAMAccountName=$1)" 1.1 | grep -q '^dn'
}

user_guid() {
	local v
	v=$(lsearch -b "CN=Users,$BASE_DN" -s one "(sAMAccountName=$1)" objectGUID |
	    sed -n 's/^objectGUID:: //p')
	[[ -n $v ]] || die "no user $1"
	guid_text "$v"
}

# One add record; an empty password makes a password-less (PASSWD_NOTREQD) account.
user_ldif() {
	local sam=$1 cn=$2 pw=$3 uac=$4
	printf 'dn:: %s\n' "$(b64 "CN=$(dn_escape "$cn"),CN=Users,$BASE_DN")"
	printf 'changetype: add\nobjectClass: user\n'
	printf 'cn:: %s\n' "$(b64 "$cn")"
	printf 'sAMAccountName: %s\n' "$sam"
	printf 'userPrincipalName: %s@quell.test\n' "$sam"
	printf 'displayName:: %s\n' "$(b64 "$cn")"
	[[ -n $pw ]] && printf 'unicodePwd:: %s\n' "$(unicodepwd "$pw")"
	printf 'userAccountControl: %s\n\n' "$uac"
}

cmd_up() {
	local adminpw
	if [[ ! -f $D/.provisioned ]]; then
		running && die "$D: samba running on an unfinished provision"
		# Only a directory this script started provisioning is ever wiped.
		if [[ -f $D/.quell-lab ]]; then
			rm -rf "${D:?}/etc" "${D:?}/private" "${D:?}/state" "${D:?}/cache" \
			    "${D:?}/bind-dns" "${D:?}/run" "${D:?}/log" "${D:?}/tls" \
			    "${D:?}/admin.pw" "${D:?}/env" "${D:?}/krb5.conf"
		elif [[ -n $(ls -A "$D") ]]; then
			die "$D: not empty and not a lab directory: use a new one"
		fi
		touch "$D/.quell-lab"
		mkdir -p "$D/run" "$D/log"
		adminpw="Qa1-$(openssl rand -hex 12)"
		samba-tool domain provision --realm=$REALM --domain=QUELL --server-role=dc \
		    --dns-backend=NONE --use-rfc2307 --adminpass="$adminpw" --targetdir="$D" \
		    --host-name=dc1 \
		    --option="interfaces=127.0.0.1" --option="bind interfaces only=yes" \
		    --option="server services=ldap, kdc" \
		    --option="pid directory=$D/run" --option="ncalrpc dir=$D/run/ncalrpc" \
		    --option="winbindd socket directory=$D/run/winbindd" \
		    --option="ntp signd socket directory=$D/run/ntp_signd" \
		    --option="log file=$D/log/log.%m" >"$D/provision.log" 2>&1 ||
		    die "provision failed, see $D/provision.log"
		(umask 077; printf '%s' "$adminpw" >"$D/admin.pw")
		chmod 600 "$D/admin.pw"

		mkdir -p "$D/tls"
		(
			umask 077
			cd "$D/tls"
			openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
			    -subj "/CN=quell lab CA" -keyout ca.key -out ca.pem \
			    -addext basicConstraints=critical,CA:TRUE \
			    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
			openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
			    -keyout server.key -out server.csr 2>/dev/null
			printf 'subjectAltName=IP:127.0.0.1,DNS:dc1.quell.test\nextendedKeyUsage=serverAuth\n' \
			    >server.ext
			openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
			    -CAcreateserial -days 3650 -extfile server.ext -out server.pem 2>/dev/null
		)
		chmod 644 "$D/tls/ca.pem" "$D/tls/server.pem"
		chmod 600 "$D/tls/server.key" "$D/tls/ca.key"

		sed -i "/^\[global\]/a\\
	ldap server require strong auth = no\\
	ldb:nosync = true\\
	tls enabled = yes\\
	tls keyfile = $D/tls/server.key\\
	tls certfile = $D/tls/server.pem\\
	tls cafile = $D/tls/ca.pem" "$D/etc/smb.conf"

		samba-tool domain passwordsettings set -s "$D/etc/smb.conf" --complexity=off \
		    --history-length=0 --min-pwd-age=0 --max-pwd-age=0 --min-pwd-length=0 \
		    >>"$D/provision.log" 2>&1 || die "passwordsettings failed, see $D/provision.log"

		cat >"$D/krb5.conf" <<-KRB
		[libdefaults]
		 default_realm = $REALM
		 dns_lookup_realm = false
		 dns_lookup_kdc = false
		 rdns = false
		 dns_canonicalize_hostname = false
		[realms]
		 $REALM = {
		  kdc = 127.0.0.1
		  admin_server = 127.0.0.1
		  kpasswd_server = 127.0.0.1
		 }
		KRB
		cat >"$D/env" <<-ENV
		LAB_DIR=$D
		LAB_LDAP_URL=ldaps://127.0.0.1
		LAB_CA=$D/tls/ca.pem
		LAB_BASE_DN=$BASE_DN
		LAB_BIND_DN=$BIND_DN
		LAB_BIND_PW_FILE=$D/admin.pw
		KRB5_CONFIG=$D/krb5.conf
		ENV
		touch "$D/.provisioned"
	fi

	running && return 0
	ldap_answers && die "another LDAP server already listens on 127.0.0.1"
	samba -i -M single -s "$D/etc/smb.conf" -d1 </dev/null >"$D/samba.log" 2>&1 &
	echo $! >"$D/samba.pid"
	local i
	for ((i = 0; i < 600; i++)); do
		running || die "samba exited, see $D/samba.log"
		ldap_ready && return 0
		sleep 0.1
	done
	die "LDAP did not answer within 60 s, see $D/samba.log"
}

cmd_down() {
	local pid i
	running || { rm -f "$D/samba.pid"; return 0; }
	pid=$(<"$D/samba.pid")
	kill -TERM "$pid"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$D/samba.pid"; return 0; }
		sleep 0.1
	done
	die "samba $pid did not exit within 30 s"
}

need_up() {
	[[ -f $D/.provisioned ]] || die "$D: not provisioned (samba.sh up $D)"
	running || die "$D: samba is not running (samba.sh up $D)"
}

add_one() {
	local sam=$1 cn=$2 pw=$3 uac=${4:-512}
	if ! user_exists "$sam"; then
		user_ldif "$sam" "$cn" "$pw" "$uac" | lmod >/dev/null
	fi
}

cmd_seed() {
	need_up
	(umask 077; printf '%s' "$SEED_PASSWORD" >"$D/user.pw")
	add_one alice 'Alice Test' "$SEED_PASSWORD"
	add_one bob 'Bob Test' "$SEED_PASSWORD"
	add_one carol 'Carol Test' "$SEED_PASSWORD" $((512 | 0x10000))
	add_one zobrien "Zoë \"Z\" O'Brien, (ops) \\ test" "$SEED_PASSWORD"
	local u
	for u in alice bob carol zobrien; do
		printf '%s %s\n' "$u" "$(user_guid "$u")"
	done
}

cmd_adduser() {
	[[ $# -ge 3 ]] || usage
	need_up
	add_one "$1" "$2" "$3" "${4:-512}"
	user_guid "$1"
}

# One ldapmodify session carrying every add, written without a subshell per user;
# users that already exist are skipped, any other refusal fails the command.
# Without a password an account costs no key derivation, which is what makes 1000 users
# take seconds instead of ~30 s; PASSWD_NOTREQD (0x20) keeps such an account enabled.
cmd_users() {
	[[ $# -ge 2 ]] || usage
	local n=$1 prefix=$2 mode=${3:-pw} i sam pwline uac
	[[ $n =~ ^[0-9]+$ ]] || die "N must be a number"
	[[ $prefix =~ ^[A-Za-z][A-Za-z0-9_-]{0,10}$ ]] || die "PREFIX: letters, digits, _ or -"
	need_up
	if [[ $mode == nopw ]]; then
		pwline='' uac=544
	else
		pwline="unicodePwd:: $(unicodepwd "$SEED_PASSWORD")"$'\n' uac=512
	fi
	for ((i = 1; i <= n; i++)); do
		printf -v sam '%s%04d' "$prefix" "$i"
		printf 'dn: CN=%s,CN=Users,%s\nchangetype: add\nobjectClass: user\n' \
		    "$sam" "$BASE_DN"
		printf 'sAMAccountName: %s\nuserPrincipalName: %s@quell.test\n' "$sam" "$sam"
		printf '%suserAccountControl: %s\n\n' "$pwline" "$uac"
	done | { lmod -c 2>&1 >/dev/null || true; } | awk '
		/^ldap_add: Already exists/ { skip = 1; next }
		skip && /^\tadditional info:/ { skip = 0; next }
		/^$/ { next }
		{ skip = 0; print; bad = 1 }
		END { exit bad }' >&2 || die "some users could not be added"
}

[[ $# -ge 2 ]] || usage
sub=$1
D=$(absdir "$2")
shift 2
case $sub in
up) cmd_up ;;
down) cmd_down ;;
seed) cmd_seed ;;
adduser) cmd_adduser "$@" ;;
users) cmd_users "$@" ;;
*) usage ;;
esac
