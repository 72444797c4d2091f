#!/usr/bin/env node
// receive.js from the Hello World tutorial (Node.js, amqplib), with the
// queue name as the first argument: node receive.js [QUEUE].
// QUEUE_TYPE=quorum (the default) declares the queue as today's tutorial
// does, a durable quorum queue; QUEUE_TYPE=classic as the older tutorial
// did (not durable).

const amqp = require('amqplib');

async function main() {
    const connection = await amqp.connect(process.env.AMQP_URL || 'amqp://localhost');
    const channel = await connection.createChannel();

    const queue = process.argv[2] || 'hello';

    if (process.env.QUEUE_TYPE === 'classic') {
        await channel.assertQueue(queue, { durable: false });
    } else {
        await channel.assertQueue(queue, {
            durable: true,
            arguments: { 'x-queue-type': 'quorum' }
        });
    }

    console.log(" [*] Waiting for messages in %s. To exit press CTRL+C", queue);

    channel.consume(queue, function(msg) {
        console.log(" [x] Received %s", msg.content.toString());
    }, {
        noAck: true
    });
}

main().catch((err) => { console.error(err); process.exit(1); });
