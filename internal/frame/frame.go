// Package frame lets a gRPC server pass messages through as the bytes
// that came on the wire, for the methods that route them without reading
// them.
//
// A handler that decodes its request into a *Frame gets the request's
// bytes, and a *Frame it returns is sent as it is. Every other value goes
// through gRPC's proto codec as usual, so one server serves both kinds of
// method.
package frame

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// Frame is one message's encoding, untouched. A Frame is sent once: the
// buffer gRPC writes from is the Frame's own until it is written.
type Frame struct {
	Data []byte

	// What Marshal hands gRPC, held in the Frame so that a Frame is sent
	// without allocating: data is Data as a mem.Buffer (a pointer to it
	// is one), bufs the one-buffer slice of it.
	data mem.SliceBuffer
	bufs [1]mem.Buffer
}

// Codec is a gRPC CodecV2 that passes Frames through and hands every
// other value to the proto codec. Install it with
// grpc.ForceServerCodecV2(frame.Codec{}).
type Codec struct{}

var protoCodec = encoding.GetCodecV2(proto.Name)

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*Frame); ok {
		f.data = f.Data
		f.bufs[0] = &f.data
		return f.bufs[:], nil
	}
	return protoCodec.Marshal(v)
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*Frame); ok {
		f.Data = data.Materialize()
		return nil
	}
	return protoCodec.Unmarshal(data, v)
}

// Name implements encoding.CodecV2: it stands in for the proto codec.
func (Codec) Name() string { return proto.Name }
