#!/usr/bin/env node
// new_task.js from the Work Queues tutorial (Node.js, amqplib), with the
// queue name as the first argument: node new_task.js QUEUE [MESSAGE...].
// QUEUE_TYPE=quorum (the default) declares the queue as today's tutorial
// does, a durable quorum queue; QUEUE_TYPE=classic as the older tutorial
// did, a durable classic queue.

const amqp = require('amqplib');

async function main() {
    const connection = await amqp.connect(process.env.AMQP_URL || 'amqp://localhost');
    const channel = await connection.createChannel();

    const queue = process.argv[2] || 'task_queue';
    const msg = process.argv.slice(3).join(' ') || "Hello World!";

    if (process.env.QUEUE_TYPE === 'classic') {
        await channel.assertQueue(queue, { durable: true });
    } else {
        await channel.assertQueue(queue, {
            durable: true,
            arguments: { 'x-queue-type': 'quorum' }
        });
    }
    channel.sendToQueue(queue, Buffer.from(msg), {
        persistent: true
    });
    console.log(" [x] Sent '%s'", msg);

    setTimeout(function() {
        connection.close();
        process.exit(0);
    }, 500);
}

main().catch((err) => { console.error(err); process.exit(1); });
