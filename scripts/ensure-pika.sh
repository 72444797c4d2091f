#!/usr/bin/env bash
# Makes sure /usr/bin/python3 can import pika, for the interop tests that run
# the tutorials' Python clients against warren.
set -euo pipefail

if /usr/bin/python3 -c 'import pika' 2>/dev/null; then
	exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "ensure-pika: installing python3-pika" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq python3-pika >/dev/null
	exit 0
fi
echo "ensure-pika: /usr/bin/python3 cannot import pika; install python3-pika" >&2
exit 1
