package warrentest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/warrenrpc/warren/route"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// DescriptorSet writes a FileDescriptorSet holding files and everything they
// import, as `buf build -o` would (route.FileSet), and returns its path.
func DescriptorSet(t testing.TB, files ...protoreflect.FileDescriptor) string {
	t.Helper()
	return WriteProto(t, route.FileSet(files...))
}

// WriteProto writes m's encoding to a file of the test's and returns its
// path.
func WriteProto(t testing.TB, m proto.Message) string {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "set.binpb")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
