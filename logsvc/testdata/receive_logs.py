#!/usr/bin/env python
# receive_logs.py, receive_logs_direct.py and receive_logs_topic.py of the
# RabbitMQ tutorials in one script, parameterised so tests use exchanges of
# their own:
#   receive_logs.py EXCHANGE TYPE [BINDING_KEY...]
# The broker URL comes from AMQP_URL (default: localhost).
import os
import sys

import pika

connection = pika.BlockingConnection(
    pika.URLParameters(os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/')))
channel = connection.channel()

exchange, exchange_type = sys.argv[1], sys.argv[2]
channel.exchange_declare(exchange=exchange, exchange_type=exchange_type)

result = channel.queue_declare(queue='', exclusive=True)
queue_name = result.method.queue

binding_keys = sys.argv[3:] or ['']
for binding_key in binding_keys:
    channel.queue_bind(exchange=exchange, queue=queue_name, routing_key=binding_key)

print(' [*] Waiting for logs. To exit press CTRL+C', flush=True)


def callback(ch, method, properties, body):
    print(f" [x] {method.routing_key}:{body.decode()}", flush=True)


channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)

channel.start_consuming()
