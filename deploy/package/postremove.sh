#!/bin/sh
# flowprobe package: after removal. Purge (deb) also deletes the flowprobe
# user and group and everything under /etc/flowprobe, secrets included; a
# plain removal, and rpm's erase, keep them.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi

if [ "$1" = purge ]; then
	rm -rf /etc/flowprobe
	if getent passwd flowprobe >/dev/null; then
		userdel flowprobe
	fi
	if getent group flowprobe >/dev/null; then
		groupdel flowprobe
	fi
fi
