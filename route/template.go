package route

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// keyTemplate is an event route's routing key: literal text and
// references to fields of the request, "{facility}.{severity}".
type keyTemplate struct {
	src   string
	parts []keyPart
}

// keyPart is literal text, or a field path when path is not empty.
type keyPart struct {
	text string
	path []protoreflect.FieldDescriptor
}

// parseKeyTemplate parses src against the request type msg. Every
// reference must name a scalar or enum field, through singular message
// fields: "{item.sku}".
func parseKeyTemplate(src string, msg protoreflect.MessageDescriptor) (*keyTemplate, error) {
	t := &keyTemplate{src: src}
	rest := src
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			t.parts = append(t.parts, keyPart{text: rest})
			break
		}
		if rest[open] == '}' {
			return nil, fmt.Errorf("routing_key %q: a } without its {", src)
		}
		if open > 0 {
			t.parts = append(t.parts, keyPart{text: rest[:open]})
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] != '}' {
			return nil, fmt.Errorf("routing_key %q: a { without its }", src)
		}
		ref := rest[open+1 : open+1+end]
		path, err := fieldPath(ref, msg)
		if err != nil {
			return nil, fmt.Errorf("routing_key %q: {%s}: %w", src, ref, err)
		}
		t.parts = append(t.parts, keyPart{path: path})
		rest = rest[open+1+end+1:]
	}
	return t, nil
}

func fieldPath(ref string, msg protoreflect.MessageDescriptor) ([]protoreflect.FieldDescriptor, error) {
	if ref == "" {
		return nil, errors.New("an empty field reference")
	}
	var path []protoreflect.FieldDescriptor
	names := strings.Split(ref, ".")
	for i, name := range names {
		fd := msg.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return nil, fmt.Errorf("%s has no field %q", msg.FullName(), name)
		}
		if fd.IsList() || fd.IsMap() {
			return nil, fmt.Errorf("%s is repeated: a routing key takes one value", fd.FullName())
		}
		last := i == len(names)-1
		switch {
		case !last && fd.Kind() != protoreflect.MessageKind:
			return nil, fmt.Errorf("%s is not a message: it has no field %q", fd.FullName(), names[i+1])
		case last && (fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind):
			return nil, fmt.Errorf("%s is a message: name one of its fields", fd.FullName())
		case last && fd.Kind() == protoreflect.BytesKind:
			return nil, fmt.Errorf("%s is bytes: a routing key takes text", fd.FullName())
		}
		path = append(path, fd)
		if !last {
			msg = fd.Message()
		}
	}
	return path, nil
}

// fields reports whether the template refers to any field: only then does
// the gateway decode the request.
func (t *keyTemplate) fields() bool {
	for _, p := range t.parts {
		if p.path != nil {
			return true
		}
	}
	return false
}

// render makes the routing key of the request m.
func (t *keyTemplate) render(m protoreflect.Message) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.path == nil {
			b.WriteString(p.text)
			continue
		}
		cur := m
		for _, fd := range p.path[:len(p.path)-1] {
			cur = cur.Get(fd).Message()
		}
		last := p.path[len(p.path)-1]
		b.WriteString(scalarText(last, cur.Get(last)))
	}
	return b.String()
}

func scalarText(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(v.Enum()))
	case protoreflect.FloatKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 32)
	case protoreflect.DoubleKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(v.Int(), 10)
	default: // the unsigned kinds
		return strconv.FormatUint(v.Uint(), 10)
	}
}
