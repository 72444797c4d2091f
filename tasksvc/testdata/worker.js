#!/usr/bin/env node
// worker.js from the Work Queues tutorial (Node.js, amqplib), with the
// queue name as the first argument: node worker.js QUEUE. One second of
// work per dot; prefetch 1; ack after the work; it also prints the message
// id. QUEUE_TYPE=quorum (the default) declares the queue as today's
// tutorial does, a durable quorum queue; QUEUE_TYPE=classic as the older
// tutorial did, a durable classic queue.

const amqp = require('amqplib');

async function main() {
    const connection = await amqp.connect(process.env.AMQP_URL || 'amqp://localhost');
    const channel = await connection.createChannel();

    const queue = process.argv[2] || 'task_queue';

    if (process.env.QUEUE_TYPE === 'classic') {
        await channel.assertQueue(queue, { durable: true });
    } else {
        await channel.assertQueue(queue, {
            durable: true,
            arguments: { 'x-queue-type': 'quorum' }
        });
    }
    channel.prefetch(1);
    console.log(" [*] Waiting for messages in %s. To exit press CTRL+C", queue);
    channel.consume(queue, function(msg) {
        const secs = msg.content.toString().split('.').length - 1;

        console.log(" [x] Received %s id=%s", msg.content.toString(), msg.properties.messageId);
        setTimeout(function() {
            console.log(" [x] Done");
            channel.ack(msg);
        }, secs * 1000);
    }, {
        // manual acknowledgment mode,
        // see /docs/confirms for details
        noAck: false
    });
}

main().catch((err) => { console.error(err); process.exit(1); });
