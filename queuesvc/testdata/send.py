#!/usr/bin/env python
# send.py from the Hello World tutorial (pika), with the queue name and the
# message as arguments: python send.py [QUEUE [MESSAGE]]. QUEUE_TYPE=quorum
# (the default) declares the queue as today's tutorial does, a durable
# quorum queue; QUEUE_TYPE=classic as the older tutorial (the seed's) did.
import os
import sys

import pika

queue = sys.argv[1] if len(sys.argv) > 1 else 'hola'
message = sys.argv[2] if len(sys.argv) > 2 else '¡Hola Mundo!'
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

if os.environ.get('QUEUE_TYPE', 'quorum') == 'classic':
    channel.queue_declare(queue=queue)
else:
    channel.queue_declare(queue=queue, durable=True, arguments={'x-queue-type': 'quorum'})

channel.basic_publish(exchange='', routing_key=queue, body=message)
print(f" [x] Sent '{message}'", flush=True)
connection.close()
