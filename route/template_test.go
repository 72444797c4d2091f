package route

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
)

func TestKeyTemplate(t *testing.T) {
	t.Parallel()
	// GetItemResponse has a message field, item, to reach into.
	desc := (&inventoryv1.GetItemResponse{}).ProtoReflect().Descriptor()
	req := &inventoryv1.GetItemResponse{Item: &inventoryv1.Item{Sku: "tea", Name: "Green tea", Stock: 7}}
	levelDesc := (&inventoryv1.StockLevel{}).ProtoReflect().Descriptor()
	level := &inventoryv1.StockLevel{Sku: "tea", Level: inventoryv1.StockLevel_LEVEL_OUT}
	for _, tt := range []struct{ src, want, wantErr string }{
		{"{item.sku}.{item.name}", "tea.Green tea", ""},
		{"stock.{item.stock}", "stock.7", ""},
		{"", "", ""},
		{"literal.only", "literal.only", ""},
		{"{item}", "", "is a message: name one of its fields"},
		{"{item.sku.x}", "", "is not a message"},
		{"{}", "", "an empty field reference"},
		{"a}", "", "a } without its {"},
		{"{item.sku", "", "a { without its }"},
		{"{item.{sku}}", "", "a { without its }"},
	} {
		tmpl, err := parseKeyTemplate(tt.src, desc)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parse %q: %v, want an error containing %q", tt.src, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parse %q: %v", tt.src, err)
			continue
		}
		if got := tmpl.render(req.ProtoReflect()); got != tt.want {
			t.Errorf("render %q = %q, want %q", tt.src, got, tt.want)
		}
	}
	// An unset message renders its fields' defaults.
	tmpl, _ := parseKeyTemplate("{item.sku}:{item.stock}", desc)
	if got := tmpl.render((&inventoryv1.GetItemResponse{}).ProtoReflect()); got != ":0" {
		t.Errorf("render of an empty message = %q", got)
	}
	// An enum renders as its value's name.
	tmpl, _ = parseKeyTemplate("{sku}.{level}", levelDesc)
	if got := tmpl.render(level.ProtoReflect()); got != "tea.LEVEL_OUT" {
		t.Errorf("render of an enum = %q, want tea.LEVEL_OUT", got)
	}
}

func FuzzKeyTemplate(f *testing.F) {
	f.Add("{item.sku}.{item.stock}", []byte{0x0a, 0x05, 0x0a, 0x03, 't', 'e', 'a'})
	f.Add("a}{b", []byte{})
	f.Add("{item.stock}", []byte{0x0a, 0x02, 0x18, 0x07})
	desc := (&inventoryv1.GetItemResponse{}).ProtoReflect().Descriptor()
	f.Fuzz(func(t *testing.T, src string, body []byte) {
		tmpl, err := parseKeyTemplate(src, desc)
		if err != nil {
			return
		}
		msg := dynamicpb.NewMessage(desc)
		if proto.Unmarshal(body, msg) != nil {
			return
		}
		if !tmpl.fields() && tmpl.render(msg) != src {
			t.Fatalf("a template without fields rendered %q, want it as written, %q", tmpl.render(msg), src)
		}
	})
}
