#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers on the AMQP port (and that its
# management API is enabled, for queue statistics): use a running one, start
# an installed one, or install rabbitmq-server from Debian's packages.
#
# The broker is the one the tests use: AMQP_URL (default
# amqp://guest:guest@127.0.0.1:5672/) and RABBITMQ_MANAGEMENT_URL (default
# http://guest:guest@127.0.0.1:15672). A broker that answers there is used as
# it is; a local broker is started or set up only when the URLs name this
# machine.
set -euo pipefail

amqp_url=${AMQP_URL:-amqp://guest:guest@127.0.0.1:${AMQP_PORT:-5672}/}
mgmt_url=${RABBITMQ_MANAGEMENT_URL:-http://guest:guest@127.0.0.1:15672}

# hostport URL prints "host port" of URL, with the scheme's default port.
hostport() {
	local url=$1 scheme rest host port
	scheme=${url%%://*}
	rest=${url#*://}
	rest=${rest%%/*}
	rest=${rest%%\?*}
	rest=${rest##*@}
	if [[ $rest == \[* ]]; then # [IPv6]:port
		host=${rest#\[}
		host=${host%%\]*}
		port=${rest##*\]}
		port=${port#:}
	elif [[ $rest == *:* ]]; then
		host=${rest%:*}
		port=${rest##*:}
	else
		host=$rest
		port=
	fi
	if [ -z "$port" ]; then
		case $scheme in
		amqp) port=5672 ;;
		amqps) port=5671 ;;
		http) port=80 ;;
		https) port=443 ;;
		*) echo "ensure-broker: cannot tell the port of $scheme URL ${url##*@}" >&2; return 1 ;;
		esac
	fi
	echo "${host:-127.0.0.1} $port"
}

# answers HOST PORT: something accepts TCP connections there.
# shellcheck disable=SC2016 # $0 and $1 are the inner shell's arguments
answers() { timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

local_host() { case $1 in 127.* | localhost | ::1) return 0 ;; *) return 1 ;; esac; }

read -r host port < <(hostport "$amqp_url")
read -r mhost mport < <(hostport "$mgmt_url")
up() { answers "$host" "$port"; }

if ! up; then
	if ! local_host "$host"; then
		echo "ensure-broker: no broker answers on $host:$port (AMQP_URL), and that is not this machine: not starting one" >&2
		exit 1
	fi
	if ! command -v rabbitmq-server >/dev/null 2>&1; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
			echo "ensure-broker: installing rabbitmq-server" >&2
			export DEBIAN_FRONTEND=noninteractive
			apt-get update -qq
			apt-get install -y -qq rabbitmq-server >/dev/null
		else
			echo "ensure-broker: no broker on $host:$port and rabbitmq-server is not installed;" >&2
			echo "ensure-broker: install it (apt-get install rabbitmq-server) or set AMQP_URL" >&2
			exit 1
		fi
	fi
	if ! up; then
		echo "ensure-broker: starting rabbitmq-server" >&2
		rabbitmq-server -detached >/dev/null 2>&1 || true
		rabbitmqctl await_startup --timeout 120 >/dev/null 2>&1 || true
	fi
	for _ in $(seq 1 60); do up && break; sleep 1; done
	if ! up; then
		echo "ensure-broker: RabbitMQ did not come up on $host:$port" >&2
		exit 1
	fi
fi

# The management API answers queue statistics (TaskService.GetQueueStats).
if ! answers "$mhost" "$mport"; then
	if local_host "$host" && local_host "$mhost" && command -v rabbitmq-plugins >/dev/null 2>&1; then
		rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 || echo "ensure-broker: could not enable rabbitmq_management" >&2
		for _ in $(seq 1 30); do answers "$mhost" "$mport" && break; sleep 1; done
	fi
	if ! answers "$mhost" "$mport"; then
		echo "ensure-broker: no management API on $mhost:$mport (RABBITMQ_MANAGEMENT_URL): queue statistics will fail" >&2
	fi
fi
echo "ensure-broker: RabbitMQ is up on $host:$port, management API on $mhost:$mport" >&2
