#!/usr/bin/env python
# emit_log.py, emit_log_direct.py and emit_log_topic.py of the RabbitMQ
# tutorials in one script, parameterised so tests use exchanges of their own:
#   emit_log.py EXCHANGE TYPE ROUTING_KEY [MESSAGE...]
# The broker URL comes from AMQP_URL (default: localhost).
import os
import sys

import pika

connection = pika.BlockingConnection(
    pika.URLParameters(os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/')))
channel = connection.channel()

exchange, exchange_type, routing_key = sys.argv[1], sys.argv[2], sys.argv[3]
channel.exchange_declare(exchange=exchange, exchange_type=exchange_type)

message = ' '.join(sys.argv[4:]) or 'info: Hello World!'
channel.basic_publish(exchange=exchange, routing_key=routing_key, body=message)
print(f" [x] Sent {routing_key}:{message}", flush=True)
connection.close()
