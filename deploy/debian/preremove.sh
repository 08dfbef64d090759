#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl stop bootyard.service >/dev/null || true
	systemctl disable bootyard.service >/dev/null || true
fi
