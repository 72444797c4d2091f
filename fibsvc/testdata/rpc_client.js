#!/usr/bin/env node
// rpc_client.js from the RPC tutorial (Node.js, amqplib): replies come by
// direct reply-to. With the queue name and the numbers as arguments:
// node rpc_client.js QUEUE N [N...]; prints " [.] Got <reply>" for each N,
// in order. Like the tutorial's, it declares no queue.

const amqp = require('amqplib');

const args = process.argv.slice(2);

if (args.length < 2) {
    console.log("Usage: rpc_client.js queue num [num...]");
    process.exit(1);
}

async function main() {
    const connection = await amqp.connect(process.env.AMQP_URL || 'amqp://localhost');
    const channel = await connection.createChannel();
    const queue = args[0];

    let pending = null;
    // Consume from the Direct Reply-to pseudo-queue (noAck is mandatory)
    await channel.consume('amq.rabbitmq.reply-to', (msg) => {
        if (pending && msg.properties.correlationId === pending.correlationId) {
            pending.resolve(msg.content.toString());
        }
    }, { noAck: true });

    for (const arg of args.slice(1)) {
        const correlationId = generateUuid();
        const num = parseInt(arg);

        console.log(' [x] Requesting fib(%d)', num);

        const result = await new Promise((resolve) => {
            pending = { correlationId, resolve };
            channel.sendToQueue(queue,
                Buffer.from(num.toString()), {
                    correlationId: correlationId,
                    replyTo: 'amq.rabbitmq.reply-to'
                });
        });

        console.log(' [.] Got %s', result);
    }
    await connection.close();
}

function generateUuid() {
    return Math.random().toString() +
        Math.random().toString() +
        Math.random().toString();
}

main().catch((err) => { console.error(err); process.exit(1); });
