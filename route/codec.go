package route

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/warrenrpc/warren/internal/wire"
)

// Codec is how a route's messages are encoded in AMQP bodies. gRPC's side
// is always protobuf.
type Codec int

const (
	// Protobuf bodies are the protobuf encoding, passed through.
	Protobuf Codec = iota
	// JSON bodies are protobuf's JSON mapping.
	JSON
)

// ContentType is the content type of the codec's bodies.
func (c Codec) ContentType() string {
	if c == JSON {
		return wire.ContentTypeJSON
	}
	return wire.ContentTypeProtobuf
}

func (c Codec) String() string {
	if c == JSON {
		return "json"
	}
	return "protobuf"
}

// toBody makes the AMQP body of a message of type desc from its protobuf
// encoding pb, which the caller checked.
func (c Codec) toBody(desc protoreflect.MessageDescriptor, pb []byte) ([]byte, error) {
	if c == Protobuf {
		return pb, nil
	}
	m := dynamicpb.NewMessage(desc)
	if err := proto.Unmarshal(pb, m); err != nil {
		return nil, err
	}
	return protojson.Marshal(m)
}

// fromBody returns the protobuf encoding of the message of type desc in
// body, refusing a body that cannot be one. A protobuf body is checked
// for protobuf's wire format, not decoded.
func (c Codec) fromBody(desc protoreflect.MessageDescriptor, body []byte) ([]byte, error) {
	if c == Protobuf {
		if err := wellFormed(body); err != nil {
			return nil, fmt.Errorf("not a protobuf %s: %w", desc.FullName(), err)
		}
		return body, nil
	}
	m := dynamicpb.NewMessage(desc)
	if err := protojson.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("not a %s in JSON: %w", desc.FullName(), err)
	}
	return proto.Marshal(m)
}

// wellFormed walks b as protobuf's wire format without decoding it.
func wellFormed(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return errors.New("a field number out of range")
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[n+m:]
	}
	return nil
}
