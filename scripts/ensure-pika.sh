#!/usr/bin/env bash
# Makes sure /usr/bin/python3 can import pika, for the interop tests that run
# the tutorials' Python clients against warren, and google.protobuf, for the
# example's Python worker (examples/inventory/python).
set -euo pipefail

missing=()
/usr/bin/python3 -c 'import pika' 2>/dev/null || missing+=(python3-pika)
/usr/bin/python3 -c 'import google.protobuf' 2>/dev/null || missing+=(python3-protobuf)
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "ensure-pika: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
	exit 0
fi
echo "ensure-pika: /usr/bin/python3 cannot import what the interop tests need; install ${missing[*]}" >&2
exit 1
