package frame

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestFramesPassThroughAndMessagesAreProto(t *testing.T) {
	t.Parallel()
	raw := []byte{0x0a, 0x03, 'a', 'b', 'c', 0xff} // not even valid protobuf
	out, err := Codec{}.Marshal(&Frame{Data: raw})
	if err != nil || !bytes.Equal(out.Materialize(), raw) {
		t.Fatalf("Marshal(Frame) = %x, %v; want the bytes as they are", out.Materialize(), err)
	}
	var in Frame
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &in); err != nil || !bytes.Equal(in.Data, raw) {
		t.Fatalf("Unmarshal into a Frame = %x, %v; want the bytes as they came", in.Data, err)
	}

	msg := wrapperspb.String("abc")
	out, err = Codec{}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(msg)
	if !bytes.Equal(out.Materialize(), want) {
		t.Errorf("Marshal(message) = %x, want its protobuf encoding %x", out.Materialize(), want)
	}
	var back wrapperspb.StringValue
	if err := (Codec{}).Unmarshal(out, &back); err != nil || back.GetValue() != "abc" {
		t.Errorf("Unmarshal(message) = %v, %v", &back, err)
	}
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &back); err == nil {
		t.Error("Unmarshal of invalid protobuf into a message succeeded")
	}
	if (Codec{}).Name() != "proto" {
		t.Errorf("Name = %q, want proto: the codec stands in for gRPC's", (Codec{}).Name())
	}
}

// A Frame is sent as it is, with nothing allocated for it.
func TestMarshalFrameAllocatesNothing(t *testing.T) {
	f := &Frame{Data: []byte{0x08, 0x1e}}
	if n := testing.AllocsPerRun(100, func() {
		out, err := Codec{}.Marshal(f)
		if err != nil || out.Len() != 2 {
			t.Fatalf("Marshal = %v bytes, %v", out.Len(), err)
		}
		out.Free()
	}); n != 0 {
		t.Errorf("allocs per Marshal of a Frame = %v, want 0", n)
	}
}
