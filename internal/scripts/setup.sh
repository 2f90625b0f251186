#!/bin/sh
# Installs the Debian/Ubuntu packages mailfs needs, only when missing.
#   setup.sh demo   fuse3 (fusermount3), for mounting
#   setup.sh test   also dovecot-imapd, dovecot-pop3d and attr (getfattr),
#                   for the tests' private Dovecot, and mailutils-imap4d
#                   (GNU Mailutils' IMAP server, whose quirks tests meet)
set -eu
need=""
command -v fusermount3 >/dev/null 2>&1 || need="$need fuse3"
if [ "${1:-demo}" = test ]; then
	command -v dovecot >/dev/null 2>&1 || need="$need dovecot-imapd dovecot-pop3d"
	[ -x /usr/lib/dovecot/imap ] || need="$need dovecot-imapd"
	[ -x /usr/lib/dovecot/pop3 ] || need="$need dovecot-pop3d"
	command -v getfattr >/dev/null 2>&1 || need="$need attr"
	command -v imap4d >/dev/null 2>&1 || [ -x /usr/sbin/imap4d ] || need="$need mailutils-imap4d"
fi
[ -z "$need" ] && exit 0
echo "setup: installing$need"
if [ "$(id -u)" = 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "setup: please install as root: apt-get install$need" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian's dovecot-core tries to start the system service; the tests run
# their own private instances and need none.
$SUDO apt-get install -y -qq --no-install-recommends $need
