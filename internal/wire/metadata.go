package wire

import (
	"context"
	"encoding/base64"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/metadata"
)

// HeaderMetadataPrefix prefixes a caller's gRPC metadata in a request's
// headers: the key "tenant" travels as "warren-md-tenant".
const HeaderMetadataPrefix = "warren-md-"

// forwarded reports whether a caller's metadata key travels to workers:
// not the ones gRPC's transport sets, and not credentials.
func forwarded(key string) bool {
	switch key {
	case "content-type", "user-agent", "te", "authorization", "cookie":
		return false
	}
	return !strings.HasPrefix(key, ":") && !strings.HasPrefix(key, "grpc-")
}

type incomingKey struct{}

// WithIncoming returns ctx carrying md, a call's metadata as gRPC's
// transport received it, when md holds a key that travels to workers
// (SetMetadata); else ctx as it is. md is not copied: nobody may change
// it. A gateway calls it at the transport (grpc.InTapHandle), so that a
// service forwarding metadata reads it with Incoming instead of copying
// all of it, gRPC's own keys included, with metadata.FromIncomingContext
// on every call.
func WithIncoming(ctx context.Context, md metadata.MD) context.Context {
	for k, vs := range md {
		if len(vs) > 0 && forwarded(k) {
			return context.WithValue(ctx, incomingKey{}, md)
		}
	}
	return ctx
}

// Incoming returns the metadata WithIncoming put in ctx, or nil.
func Incoming(ctx context.Context) metadata.MD {
	md, _ := ctx.Value(incomingKey{}).(metadata.MD)
	return md
}

// SetMetadata copies md into h, but for the keys gRPC's transport sets
// (":authority", "content-type", "user-agent", "te", "grpc-…") and
// credentials ("authorization", "cookie"). A key with one value travels as
// a string, with several as an array of strings; a binary key's ("-bin")
// values travel base64-encoded, as on gRPC's own wire.
func SetMetadata(h amqp.Table, md metadata.MD) {
	for k, vs := range md {
		if !forwarded(k) || len(vs) == 0 {
			continue
		}
		bin := strings.HasSuffix(k, "-bin")
		enc := func(v string) string {
			if bin {
				return base64.StdEncoding.EncodeToString([]byte(v))
			}
			return v
		}
		if len(vs) == 1 {
			h[HeaderMetadataPrefix+k] = enc(vs[0])
			continue
		}
		arr := make([]any, len(vs))
		for i, v := range vs {
			arr[i] = enc(v)
		}
		h[HeaderMetadataPrefix+k] = arr
	}
}

// Metadata reads back what SetMetadata wrote. Entries that could not have
// come from it (a value neither a string nor an array of strings, binary
// values that are not base64, keys gRPC would refuse) are skipped: they
// come from foreign publishers.
func Metadata(h amqp.Table) metadata.MD {
	var md metadata.MD
	for k, v := range h {
		key, ok := strings.CutPrefix(k, HeaderMetadataPrefix)
		if !ok || !validKey(key) || !forwarded(key) {
			continue
		}
		var vals []string
		switch v := v.(type) {
		case string:
			vals = []string{v}
		case []any:
			for _, e := range v {
				s, isString := e.(string)
				if !isString {
					vals = nil
					break
				}
				vals = append(vals, s)
			}
		}
		if strings.HasSuffix(key, "-bin") {
			for i, s := range vals {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					vals = nil
					break
				}
				vals[i] = string(b)
			}
		}
		if len(vals) == 0 {
			continue
		}
		if md == nil {
			md = metadata.MD{}
		}
		md[key] = vals
	}
	return md
}

// validKey reports whether gRPC accepts key: lower-case letters, digits,
// '-', '_' and '.'.
func validKey(key string) bool {
	if key == "" {
		return false
	}
	for _, c := range []byte(key) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
