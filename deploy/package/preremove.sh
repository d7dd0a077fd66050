#!/bin/sh
# flowprobe package: before removal (deb: remove; rpm: 0). Stops the service
# and disables it; an upgrade (deb: upgrade; rpm: 1) leaves it alone.
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl disable --now flowprobe.service >/dev/null 2>&1 || true
fi
