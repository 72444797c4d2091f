#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers on the AMQP port (and that its
# management API is enabled, for queue statistics): use a running one, start
# an installed one, or install rabbitmq-server from Debian's packages.
set -euo pipefail

port=${AMQP_PORT:-5672}

up() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if ! up; then
	if ! command -v rabbitmq-server >/dev/null 2>&1; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
			echo "ensure-broker: installing rabbitmq-server" >&2
			export DEBIAN_FRONTEND=noninteractive
			apt-get update -qq
			apt-get install -y -qq rabbitmq-server >/dev/null
		else
			echo "ensure-broker: no broker on 127.0.0.1:$port and rabbitmq-server is not installed;" >&2
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
		echo "ensure-broker: RabbitMQ did not come up on 127.0.0.1:$port" >&2
		exit 1
	fi
fi

# The management API answers queue statistics (TaskService.GetQueueStats).
if command -v rabbitmq-plugins >/dev/null 2>&1 && ! (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null; then
	rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 || echo "ensure-broker: could not enable rabbitmq_management" >&2
	for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null && break; sleep 1; done
fi
echo "ensure-broker: RabbitMQ is up on 127.0.0.1:$port" >&2
