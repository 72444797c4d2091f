#!/usr/bin/env python
# receive.py from the Hello World tutorial (pika), with the queue name as
# the first argument: python receive.py [QUEUE]. QUEUE_TYPE=quorum (the
# default) declares the queue as today's tutorial does, a durable quorum
# queue; QUEUE_TYPE=classic as the older tutorial (the seed's) did.
import os
import sys

import pika

queue = sys.argv[1] if len(sys.argv) > 1 else 'hola'
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

if os.environ.get('QUEUE_TYPE', 'quorum') == 'classic':
    channel.queue_declare(queue=queue)
else:
    channel.queue_declare(queue=queue, durable=True, arguments={'x-queue-type': 'quorum'})


def callback(ch, method, properties, body):
    print(f" [x] Received {body.decode()}", flush=True)


channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=True)

print(' [*] Waiting for messages. To exit press CTRL+C', flush=True)
channel.start_consuming()
