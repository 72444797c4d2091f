#!/usr/bin/env python3
"""The RabbitMQ tutorial's rpc_server.py (pika), with the queue name from argv.

Usage: rpc_server.py [QUEUE]
Prints " [x] Awaiting RPC requests" once it consumes, then " [.] fib(n)" for
each request. QUEUE_TYPE=quorum (the default) declares the queue as today's
tutorial does, a durable quorum queue; QUEUE_TYPE=classic as the older
tutorial (the seed's) did, a plain classic queue.
"""
import os
import sys

import pika

URL = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')

queue = sys.argv[1] if len(sys.argv) > 1 else 'rpc_queue'

connection = pika.BlockingConnection(pika.URLParameters(URL))
channel = connection.channel()
if os.environ.get('QUEUE_TYPE', 'quorum') == 'classic':
    channel.queue_declare(queue=queue)
else:
    channel.queue_declare(queue=queue, durable=True, arguments={'x-queue-type': 'quorum'})


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def on_request(ch, method, props, body):
    n = int(body)
    print(f" [.] fib({n})", flush=True)
    response = fib(n)
    ch.basic_publish(exchange='',
                     routing_key=props.reply_to,
                     properties=pika.BasicProperties(correlation_id=props.correlation_id),
                     body=str(response))
    ch.basic_ack(delivery_tag=method.delivery_tag)


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue=queue, on_message_callback=on_request)
print(" [x] Awaiting RPC requests", flush=True)
channel.start_consuming()
