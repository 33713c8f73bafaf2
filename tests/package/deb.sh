#!/usr/bin/env bash
# The Debian package, as a newcomer gets it: built from the checkout's files with
# dpkg-buildpackage, checked by lintian (errors fail, warnings are listed), installed
# with apt on a fresh Debian 12 root file system (mmdebstrap, minbase) and tried there:
# both --version, the example configuration validated, a minimal one accepted, the man
# pages found, the bash completion installed and completing, the unit verified and its
# sandbox scored, the quell user and its state directory made, and quelld started from
# the package as that user answering /healthz.
# Needs root and the network to Debian's mirror (apt); prints "ok: …" per check passed
# and "FAIL: …" per check failed; exit status 0 when every check passed.
#   tests/package/deb.sh
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cache=${QUELL_ROOTFS_CACHE:-/var/cache/quell/bookworm-minbase.tar}
work=$(mktemp -d "${TMPDIR:-/tmp}/quell-deb.XXXXXX")
root=$work/root
fails=0

ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT COMMAND...: runs it, shows its output when it fails
	local what=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$what"; else fail "$what"; printf '%s\n' "$out" | tail -n 20; fi
}
inroot() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

cleanup() {
	local p m
	for p in $(ls /proc | grep -E '^[0-9]+$'); do
		[ "$(readlink "/proc/$p/root" 2>/dev/null)" = "$root" ] && kill -9 "$p" 2>/dev/null
	done
	for m in run dev/pts dev proc; do umount -l "$root/$m" 2>/dev/null; done
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { fail "deb.sh needs root (chroot, apt)"; exit 1; }

# The checkout's own files (tracked, or new and not ignored), never a build directory.
mkdir -p "$work/src/quell"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 cp -P --parents -t "$work/src/quell") || { fail "copy the checkout"; exit 1; }
if (cd "$work/src/quell" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1); then
	ok "dpkg-buildpackage -us -uc -b"
else
	fail "dpkg-buildpackage -us -uc -b"; tail -n 30 "$work/build.log"; exit 1
fi
version=$(sed -nE "s/^ *version *: *'([^']+)'.*/\1/p" "$top/meson.build" | head -n 1)
deb=$work/src/quell_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] && ok "built $(basename "$deb")" || { fail "no $(basename "$deb")"; ls "$work/src"; exit 1; }
check "dpkg -c lists the bash completion" sh -c \
    "dpkg -c '$deb' | grep -Eq ' \./usr/share/bash-completion/completions/quell\$'"
# Lintian runs as an unprivileged user; warnings and info are shown, errors fail.
chmod a+rx "$work" && chmod -R a+rX "$work/src"
lint=$(runuser -u nobody -- lintian --fail-on error --tag-display-limit 0 \
    "$work/src/quell_${version}_$(dpkg --print-architecture).changes" 2>&1); lrc=$?
[ -n "$lint" ] && printf 'lintian: %s\n' "$lint"
[ "$lrc" -eq 0 ] && ok "lintian: no errors" || fail "lintian reports errors"

if [ ! -s "$cache" ]; then
	mkdir -p "$(dirname "$cache")"
	mmdebstrap --quiet --format=tar --variant=minbase --include=ca-certificates bookworm "$cache.part" \
	    >"$work/mmdebstrap.log" 2>&1 && mv "$cache.part" "$cache" ||
	    { fail "mmdebstrap"; tail -n 20 "$work/mmdebstrap.log"; exit 1; }
fi
mkdir -p "$root" && tar -xf "$cache" -C "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null
if [ -d /usr/local/share/ca-certificates ]; then
	mkdir -p "$root/usr/local/share/ca-certificates"
	cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
	inroot update-ca-certificates >/dev/null 2>&1
fi
mount -t proc proc "$root/proc" && mount --bind /dev "$root/dev" &&
    mount --bind /dev/pts "$root/dev/pts" && mount -t tmpfs tmpfs "$root/run"
cp "$deb" "$root/tmp/"
if inroot sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    /tmp/$(basename "$deb") man-db curl" >"$work/apt.log" 2>&1; then
	ok "apt install ./$(basename "$deb") on a fresh Debian 12"
else
	fail "apt install ./$(basename "$deb")"; tail -n 30 "$work/apt.log"; exit 1
fi

check "quelld --version" inroot sh -c "quelld --version | grep -qx 'quelld $version.*'"
check "quell --version" inroot sh -c "quell --version | grep -qx 'quell $version.*'"
for page in quell quelld quelld.conf; do
	check "man -w $page" inroot man -w "$page"
done
# Where bash-completion loads it from on demand: it completes a command.
check "the packaged completion completes quell revoke-s" inroot bash -c \
    '. /usr/share/bash-completion/completions/quell && COMP_WORDS=(quell revoke-s) &&
    COMP_CWORD=1 && _quell && test "${COMPREPLY[*]}" = revoke-sessions'
# The example names files a fresh machine does not have: check must say which.
out=$(inroot quelld -c /usr/share/doc/quell/examples/quelld.conf check 2>&1); rc=$?
if [ "$rc" -eq 1 ] && grep -q "/usr/share/doc/quell/examples/quelld.conf:[0-9]*: .*/etc/quell/" <<<"$out"; then
	ok "quelld check on the example names what is missing: $out"
else
	fail "quelld check on the example (exit $rc): $out"
fi
check "the quell system user" inroot id quell
check "/var/lib/quell is 0700 quell:quell" inroot sh -c \
    'test "$(stat -c "%a %U %G" /var/lib/quell)" = "700 quell quell"'
check "systemd-analyze verify quelld.service" inroot systemd-analyze verify \
    /lib/systemd/system/quelld.service
cp "$top/tests/package/unit-security.sh" "$root/tmp/"
out=$(inroot bash /tmp/unit-security.sh /lib/systemd/system/quelld.service 2>&1); rc=$?
printf '%s\n' "$out" | tail -n 1
[ "$rc" -eq 0 ] && ok "unit sandbox score" || { fail "unit sandbox score"; printf '%s\n' "$out"; }

# A minimal configuration where the unit reads it; quelld as the quell user.
cat >"$root/etc/quell/quelld.conf" <<'CONF'
[server]
listen = 127.0.0.1:0
CONF
chmod 0640 "$root/etc/quell/quelld.conf" && inroot chgrp quell /etc/quell/quelld.conf
check "quelld check on a minimal configuration" inroot quelld check
inroot runuser -u quell -- quelld >"$work/quelld.log" 2>&1 &
port=
for _ in $(seq 100); do
	port=$(sed -nE 's/.*listening on \S+ \(port ([0-9]+)\).*/\1/p' "$work/quelld.log")
	[ -n "$port" ] && break
	sleep 0.1
done
if [ -n "$port" ] && inroot curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null; then
	ok "quelld from the package runs as quell and answers /healthz"
else
	fail "quelld from the package did not answer"; cat "$work/quelld.log"
fi
check "its store belongs to quell" inroot sh -c \
    'test "$(stat -c "%U %a" /var/lib/quell/quell.db)" = "quell 600"'
echo "deb.sh: $fails check(s) failed"
[ "$fails" -eq 0 ]
