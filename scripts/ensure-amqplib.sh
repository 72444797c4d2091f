#!/usr/bin/env bash
# Makes sure node can load amqplib, the client of the RabbitMQ tutorials'
# JavaScript programs, for the interop tests that run them beside warren:
# Node.js from Debian's packages when node is missing (as root), and amqplib
# as internal/interop/package-lock.json pins it, installed with npm ci into
# .tmp/node (the tests point NODE_PATH at .tmp/node/node_modules).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=.tmp/node
lock=internal/interop/package-lock.json

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "ensure-amqplib: installing nodejs and npm" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq nodejs npm >/dev/null
	else
		echo "ensure-amqplib: node and npm are missing; install nodejs and npm" >&2
		exit 1
	fi
fi

# Up to date: the same lock file installed, and amqplib loads.
if cmp -s "$lock" "$dir/package-lock.json" &&
	NODE_PATH="$dir/node_modules" node -e 'require("amqplib")' 2>/dev/null; then
	exit 0
fi
echo "ensure-amqplib: installing amqplib into $dir" >&2
mkdir -p "$dir"
cp internal/interop/package.json "$lock" "$dir/"
npm ci --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error
NODE_PATH="$dir/node_modules" node -e 'require("amqplib")'
