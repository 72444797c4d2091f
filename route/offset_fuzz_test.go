package route

import (
	"testing"

	"google.golang.org/protobuf/proto"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
)

// FuzzWithOffset: the offset appended to any message a publisher may send
// (any bytes that parse as the response type) reads back as that offset,
// and leaves every other field as it was; the bytes given are not changed.
func FuzzWithOffset(f *testing.F) {
	for _, m := range []*inventoryv1.StockLevel{
		{},
		{Sku: "tea", Level: inventoryv1.StockLevel_LEVEL_LOW, Stock: 2},
		{Sku: "coffee", Offset: proto.Int64(7)}, // a publisher's own offset is overwritten
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, int64(0))
		f.Add(b, int64(1)<<40)
	}
	fd := (&inventoryv1.StockLevel{}).ProtoReflect().Descriptor().Fields().ByName("offset")
	f.Fuzz(func(t *testing.T, pb []byte, off int64) {
		var before inventoryv1.StockLevel
		if proto.Unmarshal(pb, &before) != nil {
			return // not a StockLevel: checkMessage refuses it first
		}
		kept := string(pb)
		out := withOffset(pb, fd, off)
		if string(pb) != kept {
			t.Fatal("withOffset changed the bytes it was given")
		}
		var after inventoryv1.StockLevel
		if err := proto.Unmarshal(out, &after); err != nil {
			t.Fatalf("with the offset appended, the message no longer parses: %v", err)
		}
		if after.Offset == nil || after.GetOffset() != off {
			t.Fatalf("offset %v, want %d", after.Offset, off)
		}
		after.Offset, before.Offset = nil, nil
		if !proto.Equal(&after, &before) {
			t.Fatalf("the other fields changed: %v, want %v", &after, &before)
		}
	})
}
