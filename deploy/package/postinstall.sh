#!/bin/sh
# flowprobe package: after install or upgrade (deb: configure; rpm: 1 or 2).
# Creates the flowprobe system user and the secrets directory. It enables and
# starts nothing: it says how.
set -e

case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

if ! getent group flowprobe >/dev/null; then
	groupadd --system flowprobe
fi
if ! getent passwd flowprobe >/dev/null; then
	nologin=$(command -v nologin || echo /usr/sbin/nologin)
	useradd --system --gid flowprobe --home-dir /nonexistent --no-create-home \
		--shell "$nologin" --comment "flowprobe network flow checks" flowprobe
fi
# Secrets: readable by flowprobe, written by root.
install -d -m 0750 -o root -g flowprobe /etc/flowprobe/secrets

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi

# deb passes the previous version on upgrade; rpm passes 2.
if [ -n "$2" ] || [ "$1" = 2 ]; then
	echo "flowprobe upgraded. If it runs, restart it: systemctl restart flowprobe"
else
	echo "flowprobe installed; it is not running. Edit /etc/flowprobe/flowprobe.yml, then:"
	echo "  flowprobe validate /etc/flowprobe/flowprobe.yml"
	echo "  systemctl enable --now flowprobe"
fi
