#!/usr/bin/env python
# send.py from the Hello World tutorial (pika), with the queue name as the
# first argument: python send.py [QUEUE]
import os
import sys

import pika

queue = sys.argv[1] if len(sys.argv) > 1 else 'hola'
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

channel.queue_declare(queue=queue)

channel.basic_publish(exchange='', routing_key=queue, body='¡Hola Mundo!')
print(" [x] Sent '¡Hola Mundo!'", flush=True)
connection.close()
