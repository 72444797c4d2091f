#!/usr/bin/env node
// send.js from the Hello World tutorial (Node.js, amqplib), with the queue
// name and the message as arguments: node send.js [QUEUE [MESSAGE]].
// QUEUE_TYPE=quorum (the default) declares the queue as today's tutorial
// does, a durable quorum queue; QUEUE_TYPE=classic as the older tutorial
// did (not durable).

const amqp = require('amqplib');

async function main() {
    const connection = await amqp.connect(process.env.AMQP_URL || 'amqp://localhost');
    const channel = await connection.createChannel();

    const queue = process.argv[2] || 'hello';
    const msg = process.argv[3] || 'Hello World!';

    if (process.env.QUEUE_TYPE === 'classic') {
        await channel.assertQueue(queue, { durable: false });
    } else {
        await channel.assertQueue(queue, {
            durable: true,
            arguments: { 'x-queue-type': 'quorum' }
        });
    }
    channel.sendToQueue(queue, Buffer.from(msg));

    console.log(" [x] Sent '%s'", msg);

    setTimeout(function() {
        connection.close();
        process.exit(0);
    }, 500);
}

main().catch((err) => { console.error(err); process.exit(1); });
