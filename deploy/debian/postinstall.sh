#!/bin/sh
set -e
# The service runs as its own unprivileged user; the state directory is created by systemd.
if ! getent passwd bootyard >/dev/null; then
	adduser --system --group --home /var/lib/bootyard --no-create-home bootyard >/dev/null
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
	systemctl enable bootyard.service >/dev/null || true
fi
