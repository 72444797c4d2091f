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
	desc := (&inventoryv1.ReportLevelRequest{}).ProtoReflect().Descriptor()
	req := &inventoryv1.ReportLevelRequest{Level: &inventoryv1.StockLevel{Sku: "tea", Level: inventoryv1.StockLevel_LEVEL_OUT, Stock: 7}}
	for _, tt := range []struct{ src, want, wantErr string }{
		{"{level.sku}.{level.level}", "tea.LEVEL_OUT", ""},
		{"stock.{level.stock}", "stock.7", ""},
		{"", "", ""},
		{"literal.only", "literal.only", ""},
		{"{level}", "", "is a message: name one of its fields"},
		{"{level.sku.x}", "", "is not a message"},
		{"{}", "", "an empty field reference"},
		{"a}", "", "a } without its {"},
		{"{level.sku", "", "a { without its }"},
		{"{level.{sku}}", "", "a { without its }"},
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
	tmpl, _ := parseKeyTemplate("{level.sku}:{level.level}", desc)
	if got := tmpl.render((&inventoryv1.ReportLevelRequest{}).ProtoReflect()); got != ":LEVEL_UNSPECIFIED" {
		t.Errorf("render of an empty request = %q", got)
	}
}

func FuzzKeyTemplate(f *testing.F) {
	f.Add("{level.sku}.{level.level}", []byte{0x0a, 0x05, 0x0a, 0x03, 't', 'e', 'a'})
	f.Add("a}{b", []byte{})
	f.Add("{level.stock}", []byte{0x0a, 0x02, 0x18, 0x07})
	desc := (&inventoryv1.ReportLevelRequest{}).ProtoReflect().Descriptor()
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
