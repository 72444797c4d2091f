#!/usr/bin/env python
# new_task.py from the Work Queues tutorial (pika), with the queue name as
# the first argument: python new_task.py QUEUE [MESSAGE...]
import os
import sys

import pika

queue = sys.argv[1] if len(sys.argv) > 1 else 'task_queue'
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

channel.queue_declare(queue=queue, durable=True)

message = ' '.join(sys.argv[2:]) or "Hello World!"
channel.basic_publish(
    exchange='',
    routing_key=queue,
    body=message,
    properties=pika.BasicProperties(
        delivery_mode=pika.spec.PERSISTENT_DELIVERY_MODE
    ))
print(f" [x] Sent {message}", flush=True)
connection.close()
