#!/usr/bin/env python
# new_task.py from the Work Queues tutorial (pika), with the queue name as
# the first argument: python new_task.py QUEUE [MESSAGE...]. QUEUE_TYPE=quorum
# (the default) declares the queue as today's tutorial does, a durable
# quorum queue; QUEUE_TYPE=classic as the older tutorial (the seed's) did,
# a durable classic queue. Debian's pika 1.2 has no pika.DeliveryMode:
# delivery_mode=2 is its Persistent.
import os
import sys

import pika

queue = sys.argv[1] if len(sys.argv) > 1 else 'task_queue'
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

if os.environ.get('QUEUE_TYPE', 'quorum') == 'classic':
    channel.queue_declare(queue=queue, durable=True)
else:
    channel.queue_declare(queue=queue, durable=True, arguments={'x-queue-type': 'quorum'})

message = ' '.join(sys.argv[2:]) or "Hello World!"
channel.basic_publish(
    exchange='',
    routing_key=queue,
    body=message,
    properties=pika.BasicProperties(
        delivery_mode=2,
    ))
print(f" [x] Sent {message}", flush=True)
connection.close()
