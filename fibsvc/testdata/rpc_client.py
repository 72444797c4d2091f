#!/usr/bin/env python3
"""The RabbitMQ tutorial's rpc_client.py (pika), with the queue from argv.

Usage: rpc_client.py QUEUE N [N ...]
Prints " [.] Got <reply>" for each N, in order.
"""
import os
import sys
import uuid

import pika

URL = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')


class FibonacciRpcClient(object):

    def __init__(self, queue):
        self.queue = queue
        self.connection = pika.BlockingConnection(pika.URLParameters(URL))
        self.channel = self.connection.channel()
        result = self.channel.queue_declare(queue='', exclusive=True)
        self.callback_queue = result.method.queue
        self.channel.basic_consume(queue=self.callback_queue,
                                   on_message_callback=self.on_response,
                                   auto_ack=True)
        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n):
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(exchange='',
                                   routing_key=self.queue,
                                   properties=pika.BasicProperties(reply_to=self.callback_queue,
                                                                   correlation_id=self.corr_id),
                                   body=str(n))
        self.connection.process_data_events(time_limit=None)
        while self.response is None:
            self.connection.process_data_events(time_limit=10)
        return self.response.decode()


client = FibonacciRpcClient(sys.argv[1])
for arg in sys.argv[2:]:
    print(f" [x] Requesting fib({arg})", flush=True)
    print(f" [.] Got {client.call(arg)}", flush=True)
