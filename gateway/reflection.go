package gateway

import (
	"fmt"
	"log/slog"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"

	// The standard error details (google.rpc.PreconditionFailure, …) are
	// linked in, so that reflection describes the details a worker sends
	// and grpcurl shows them decoded.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"
)

// A Resolver finds descriptors by file path and by name; a
// *protoregistry.Files is one.
type Resolver interface {
	FindFileByPath(string) (protoreflect.FileDescriptor, error)
	FindDescriptorByName(protoreflect.FullName) (protoreflect.Descriptor, error)
}

// A Describer is a Service whose descriptors are not compiled into the
// gateway, such as one loaded from a descriptor set (package route):
// reflection serves them, with the comments they hold.
type Describer interface {
	Descriptors() Resolver
}

// registerReflection registers server reflection, v1 and v1alpha as
// reflection.Register does, answering from warren's own descriptors with
// their comments (warrenFiles), then from the services' own (Describer),
// then from the linked-in registry for every other file (health,
// reflection itself). Should warren's fail to load, it logs why and
// serves the rest: warren's services without comments.
func registerReflection(s *grpc.Server, log *slog.Logger, services []Service) {
	var chain resolvers
	if files, err := warrenFiles(); err != nil {
		log.Warn("gateway: reflection serves descriptors without comments", "err", err)
	} else {
		chain = append(chain, files)
	}
	for _, svc := range services {
		if d, ok := svc.(Describer); ok {
			chain = append(chain, d.Descriptors())
		}
	}
	chain = append(chain, protoregistry.GlobalFiles)
	opts := reflection.ServerOptions{Services: s, DescriptorResolver: chain}
	reflectionv1alpha.RegisterServerReflectionServer(s, reflection.NewServer(opts))
	reflectionv1.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
}

// warrenFiles returns warren's .proto files (warren/v1/*.proto and what they
// import) with their source info, built once from the descriptor set that
// gen/ embeds: protoc-gen-go compiles them in without their comments.
var warrenFiles = sync.OnceValues(func() (*protoregistry.Files, error) {
	var set descriptorpb.FileDescriptorSet
	if err := protojson.Unmarshal([]byte(warrenv1.DescriptorSetJSON), &set); err != nil {
		return nil, fmt.Errorf("gateway: decode warren's descriptor set: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("gateway: build warren's descriptors: %w", err)
	}
	return files, nil
})

// resolvers resolves from the first of its Resolvers that knows.
type resolvers []Resolver

func (rs resolvers) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	for _, r := range rs {
		if fd, err := r.FindFileByPath(path); err == nil {
			return fd, nil
		}
	}
	return nil, fmt.Errorf("%w: file %q", protoregistry.NotFound, path)
}

func (rs resolvers) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	for _, r := range rs {
		if d, err := r.FindDescriptorByName(name); err == nil {
			return d, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", protoregistry.NotFound, name)
}
