#!/usr/bin/env python
# worker.py from the Work Queues tutorial (pika), with the queue name as the
# first argument: python worker.py QUEUE. One second of work per dot;
# prefetch 1; ack after the work; it also prints the message id.
# QUEUE_TYPE=quorum (the default) declares the queue as today's tutorial
# does, a durable quorum queue; QUEUE_TYPE=classic as the older tutorial
# (the seed's) did, a durable classic queue.
import os
import sys
import time

import pika

queue = sys.argv[1] if len(sys.argv) > 1 else 'task_queue'
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

if os.environ.get('QUEUE_TYPE', 'quorum') == 'classic':
    channel.queue_declare(queue=queue, durable=True)
else:
    channel.queue_declare(queue=queue, durable=True, arguments={'x-queue-type': 'quorum'})
print(' [*] Waiting for messages. To exit press CTRL+C', flush=True)


def callback(ch, method, properties, body):
    print(f" [x] Received {body.decode()} id={properties.message_id}", flush=True)
    time.sleep(body.count(b'.'))
    print(" [x] Done", flush=True)
    ch.basic_ack(delivery_tag=method.delivery_tag)


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue=queue, on_message_callback=callback)

channel.start_consuming()
