#!/usr/bin/env node
// rpc_server.js from the RPC tutorial (Node.js, amqplib), with the queue
// name as the first argument: node rpc_server.js [QUEUE].
// QUEUE_TYPE=quorum (the default) declares the queue as today's tutorial
// does, a durable quorum queue; QUEUE_TYPE=classic as the older tutorial
// did (not durable).

const amqp = require('amqplib');

async function main() {
    const connection = await amqp.connect(process.env.AMQP_URL || 'amqp://localhost');
    const channel = await connection.createChannel();

    const queue = process.argv[2] || 'rpc_queue';

    if (process.env.QUEUE_TYPE === 'classic') {
        await channel.assertQueue(queue, { durable: false });
    } else {
        await channel.assertQueue(queue, {
            durable: true,
            arguments: { 'x-queue-type': 'quorum' }
        });
    }
    channel.prefetch(1);
    console.log(' [x] Awaiting RPC requests');
    channel.consume(queue, function reply(msg) {
        const n = parseInt(msg.content.toString());

        console.log(" [.] fib(%d)", n);

        const r = fibonacci(n);

        channel.sendToQueue(msg.properties.replyTo,
            Buffer.from(r.toString()), {
                correlationId: msg.properties.correlationId
            });

        channel.ack(msg);
    });
}

function fibonacci(n) {
    let a = 0;
    let b = 1;
    for (let i = 0; i < n; i++) {
        [a, b] = [b, a + b];
    }
    return a;
}

main().catch((err) => { console.error(err); process.exit(1); });
