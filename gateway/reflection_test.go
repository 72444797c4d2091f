package gateway_test

import (
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestReflectionServesComments asks the gateway's reflection, as grpcurl
// describe does, for the file of every warren service: each service and
// each of its rpcs comes with its comment from the .proto file, and the
// file is otherwise the one compiled into the binary. Files that are not
// warren's (health) are still served.
func TestReflectionServesComments(t *testing.T) {
	t.Parallel()
	g := serveRPCGateway(t, gwConfig{})
	services := []protoreflect.ServiceDescriptor{
		warrenv1.File_warren_v1_fibonacci_proto.Services().Get(0),
		warrenv1.File_warren_v1_log_proto.Services().Get(0),
		warrenv1.File_warren_v1_queue_proto.Services().Get(0),
		warrenv1.File_warren_v1_task_proto.Services().Get(0),
	}
	for _, compiled := range services {
		t.Run(string(compiled.Name()), func(t *testing.T) {
			t.Parallel()
			files := warrentest.ReflectFile(t, g.Conn, compiled.FullName())
			d, err := files.FindDescriptorByName(compiled.FullName())
			if err != nil {
				t.Fatalf("the files served for %s: %v", compiled.FullName(), err)
			}
			sd := d.(protoreflect.ServiceDescriptor)
			source := protoSource(t, sd.ParentFile().Path())
			wantComment(t, source, sd)
			for i := range sd.Methods().Len() {
				wantComment(t, source, sd.Methods().Get(i))
			}

			served := protodesc.ToFileDescriptorProto(sd.ParentFile())
			served.SourceCodeInfo = nil
			if !proto.Equal(served, protodesc.ToFileDescriptorProto(compiled.ParentFile())) {
				t.Errorf("%s as served, without its comments, differs from the compiled one: make generate", sd.ParentFile().Path())
			}
		})
	}
	t.Run("Health", func(t *testing.T) {
		t.Parallel()
		files := warrentest.ReflectFile(t, g.Conn, "grpc.health.v1.Health")
		if _, err := files.FindDescriptorByName("grpc.health.v1.Health"); err != nil {
			t.Errorf("the files served for grpc.health.v1.Health: %v", err)
		}
	})
}

// protoSource is the .proto file at path (under proto/), each line without
// its indentation.
func protoSource(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("../proto/" + path)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for line := range strings.Lines(string(b)) {
		out.WriteString(strings.TrimLeft(line, " \t"))
	}
	return out.String()
}

// wantComment fails unless d came with a leading comment that source, its
// .proto file as protoSource returns it, has.
func wantComment(t *testing.T, source string, d protoreflect.Descriptor) {
	t.Helper()
	comment := d.ParentFile().SourceLocations().ByDescriptor(d).LeadingComments
	if comment == "" {
		t.Errorf("%s: served without a comment", d.FullName())
		return
	}
	// protoc's form of a // comment: the text after each //, one line each.
	var block strings.Builder
	for line := range strings.Lines(strings.TrimSuffix(comment, "\n")) {
		block.WriteString("//" + strings.TrimSuffix(line, "\n") + "\n")
	}
	if !strings.Contains(source, block.String()) {
		t.Errorf("%s: served comment %q is not in %s", d.FullName(), comment, d.ParentFile().Path())
	}
}
