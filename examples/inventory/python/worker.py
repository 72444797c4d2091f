#!/usr/bin/env python3
"""A worker for inventory.v1.InventoryService with pika and python-protobuf.

It serves warren's gateway following docs/wire-contract.md, with no warren
code: the message classes are built at run time from the descriptor set the
gateway reads (buf build examples/inventory/proto -o inventory.binpb), and
it keeps its stock in memory, as examples/inventory/store does.

Usage:
  worker.py --descriptor-set inventory.binpb --stock 'tea=5:Green tea, 100 g'
            [--amqp-url URL] [--route-prefix PREFIX] [--prefetch N]

It prints "ready" once it consumes, and stops on SIGTERM or Ctrl-C.
"""
import argparse
import base64
import os
import signal
import sys
import time
import traceback

import pika
from google.protobuf import any_pb2, descriptor_pb2, json_format, message_factory, text_format
from google.protobuf.message import DecodeError

SERVICE = "inventory.v1.InventoryService"
# The request queues the routes in inventory.proto name (a route without a
# queue uses the method's full name); the gateway's --route-prefix goes before.
QUEUES = {
    "Reserve": "inventory.reserve",
    "GetItem": "inventory.v1.InventoryService.GetItem",
    "Stocktake": "inventory.stocktake",
}
# The methods whose route is a stream: the handler yields the replies.
STREAMS = {"Stocktake"}
# The methods whose route sets codec: CODEC_JSON: their messages travel in
# protobuf's JSON mapping (the others' as protobuf).
JSON = {"GetItem"}
PROTOBUF = "application/protobuf"

# The two googleapis messages an error with details needs, for descriptor
# sets that do not hold google/rpc/*.proto (the inventory's does not).
GOOGLE_RPC = {
    "google/rpc/status.proto": """
        name: "google/rpc/status.proto" package: "google.rpc" syntax: "proto3"
        dependency: "google/protobuf/any.proto"
        message_type { name: "Status"
          field { name: "code" number: 1 label: LABEL_OPTIONAL type: TYPE_INT32 }
          field { name: "message" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
          field { name: "details" number: 3 label: LABEL_REPEATED type: TYPE_MESSAGE
                  type_name: ".google.protobuf.Any" } }""",
    "google/rpc/error_details.proto": """
        name: "google/rpc/error_details.proto" package: "google.rpc" syntax: "proto3"
        message_type { name: "PreconditionFailure"
          field { name: "violations" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
                  type_name: ".google.rpc.PreconditionFailure.Violation" }
          nested_type { name: "Violation"
            field { name: "type" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
            field { name: "subject" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
            field { name: "description" number: 3 label: LABEL_OPTIONAL type: TYPE_STRING } } }""",
}


def load_messages(path):
    """Message classes by full name, from a FileDescriptorSet file."""
    with open(path, "rb") as f:
        files = list(descriptor_pb2.FileDescriptorSet.FromString(f.read()).file)
    have = {f.name for f in files}
    if "google/protobuf/any.proto" not in have:
        files.append(descriptor_pb2.FileDescriptorProto.FromString(any_pb2.DESCRIPTOR.serialized_pb))
    for name, text in GOOGLE_RPC.items():
        if name not in have:
            files.append(text_format.Parse(text, descriptor_pb2.FileDescriptorProto()))
    return message_factory.GetMessages(files)


class RPCError(Exception):
    """An error reply: a gRPC code's name, a message, and details."""

    CODES = {name: number for number, name in enumerate((
        "OK CANCELLED UNKNOWN INVALID_ARGUMENT DEADLINE_EXCEEDED NOT_FOUND ALREADY_EXISTS "
        "PERMISSION_DENIED RESOURCE_EXHAUSTED FAILED_PRECONDITION ABORTED OUT_OF_RANGE "
        "UNIMPLEMENTED INTERNAL UNAVAILABLE DATA_LOSS UNAUTHENTICATED").split())}

    def __init__(self, code, message, *details):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details

    def headers(self, messages):
        h = {"warren-error-code": self.code, "warren-error-message": self.message}
        if self.details:
            st = messages["google.rpc.Status"](code=self.CODES[self.code], message=self.message)
            for d in self.details:
                st.details.add().Pack(d)
            h["warren-error-status-bin"] = base64.b64encode(st.SerializeToString()).decode()
        return h


class Store:
    """InventoryService in memory, as examples/inventory/store/store.go."""

    def __init__(self, messages, items):
        self.m = messages
        self.items = {it.sku: it for it in items}
        self.seq = 0

    def find(self, sku):
        if sku not in self.items:
            raise RPCError("NOT_FOUND", f'no item "{sku}"')
        return self.items[sku]

    def Reserve(self, req, metadata):
        if req.count == 0:
            raise RPCError("INVALID_ARGUMENT", "count must be at least 1")
        item = self.find(req.sku)
        if item.stock < req.count:
            pf = self.m["google.rpc.PreconditionFailure"]()
            pf.violations.add(type="STOCK", subject=req.sku, description=f"{item.stock} left")
            raise RPCError("FAILED_PRECONDITION", "not enough stock", pf)
        item.stock -= req.count
        self.seq += 1
        rid = f"r{self.seq}"
        if "tenant" in metadata:
            rid = metadata["tenant"][0] + "/" + rid
        return self.m["inventory.v1.ReserveResponse"](reservation_id=rid, left=item.stock)

    def GetItem(self, req, metadata):
        item = self.m["inventory.v1.Item"]()
        item.CopyFrom(self.find(req.sku))
        return self.m["inventory.v1.GetItemResponse"](item=item)

    def Stocktake(self, req, metadata):
        skus = list(req.skus) or sorted(self.items)
        for i, sku in enumerate(skus):
            item = self.m["inventory.v1.Item"]()
            item.CopyFrom(self.find(sku))
            yield self.m["inventory.v1.StocktakeResponse"](item=item, counted=i + 1, total=len(skus))


def metadata_of(headers):
    """The caller's gRPC metadata from warren-md-<key> headers: key -> values."""
    md = {}
    for k, v in headers.items():
        if k.startswith("warren-md-"):
            key, values = k[len("warren-md-"):], v if isinstance(v, list) else [v]
            md[key] = [base64.b64decode(x) for x in values] if key.endswith("-bin") else values
    return md


def serve(channel, queue, method, store, messages):
    """Declares a method's queue and consumes its requests."""
    request_type = method.input_type.full_name
    response_type = method.output_type.full_name
    handler = getattr(store, method.name)

    def on_request(ch, deliver, props, body):
        headers = props.headers or {}
        deadline = headers.get("warren-deadline")  # Unix milliseconds
        if isinstance(deadline, int) and deadline < time.time() * 1000:
            ch.basic_ack(delivery_tag=deliver.delivery_tag)  # the caller gave up
            return
        if not props.reply_to:
            ch.basic_reject(delivery_tag=deliver.delivery_tag, requeue=False)  # nobody to answer
            return
        reply = pika.BasicProperties(correlation_id=props.correlation_id)
        try:
            if props.type and props.type != request_type:
                raise RPCError("INVALID_ARGUMENT", f'a request of type "{props.type}", want {request_type}')
            try:
                if method.name in JSON:
                    req = json_format.Parse(body, messages[request_type]())
                else:
                    req = messages[request_type].FromString(body)
            except (DecodeError, json_format.ParseError) as e:
                raise RPCError("INVALID_ARGUMENT", f"the request is not a {request_type}: {e}")
            if method.name in STREAMS:
                # Each reply numbered from 0; then the end, here a success.
                for seq, resp in enumerate(handler(req, metadata_of(headers))):
                    ch.basic_publish(exchange="", routing_key=props.reply_to, body=resp.SerializeToString(),
                                     properties=pika.BasicProperties(
                                         correlation_id=props.correlation_id, content_type=PROTOBUF,
                                         type=response_type, headers={"warren-stream-seq": seq}))
                reply.headers, out = {"warren-stream-end": True}, b""
            elif method.name in JSON:
                out = json_format.MessageToJson(handler(req, metadata_of(headers))).encode()
                reply.content_type, reply.type = "application/json", response_type
            else:
                out = handler(req, metadata_of(headers)).SerializeToString()
                reply.content_type, reply.type = PROTOBUF, response_type
        except Exception as e:
            if not isinstance(e, RPCError):
                traceback.print_exc()
                e = RPCError("INTERNAL", "worker: the handler failed")
            print(f" [x] {method.name}: {e.code}: {e.message}", file=sys.stderr, flush=True)
            out = f"error: {e.message}".encode()
            reply.content_type, reply.headers = "text/plain", e.headers(messages)
            if method.name in STREAMS:
                reply.headers["warren-stream-end"] = True  # the end, a failure
        ch.basic_publish(exchange="", routing_key=props.reply_to, properties=reply, body=out)
        ch.basic_ack(delivery_tag=deliver.delivery_tag)

    channel.queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.basic_consume(queue=queue, on_message_callback=on_request)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
    p.add_argument("--descriptor-set", required=True, metavar="FILE",
                   help="a FileDescriptorSet holding inventory/v1/inventory.proto (buf build -o FILE)")
    p.add_argument("--route-prefix", default="", help="the gateway's --route-prefix")
    p.add_argument("--prefetch", type=int, default=16)
    p.add_argument("--stock", action="append", default=[], metavar="SKU=COUNT:NAME",
                   help="an item in stock; repeat it")
    args = p.parse_args()

    messages = load_messages(args.descriptor_set)
    if "inventory.v1.Item" not in messages:
        sys.exit(f"worker.py: {args.descriptor_set} does not hold inventory/v1/inventory.proto")
    items = []
    for s in args.stock:
        sku, _, rest = s.partition("=")
        count, _, name = rest.partition(":")
        items.append(messages["inventory.v1.Item"](sku=sku, name=name, stock=int(count)))
    store = Store(messages, items)
    service = messages["inventory.v1.Item"].DESCRIPTOR.file.pool.FindServiceByName(SERVICE)

    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))

    connection = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=args.prefetch)
    for name, queue in QUEUES.items():
        serve(channel, args.route_prefix + queue, service.methods_by_name[name], store, messages)
    print("ready", flush=True)
    while not stopping:
        connection.process_data_events(time_limit=0.2)
    # Requests received but not acknowledged go back to their queues.
    connection.close()


if __name__ == "__main__":
    main()
