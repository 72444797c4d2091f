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
)

// registerReflection registers server reflection, v1 and v1alpha as
// reflection.Register does, answering from warren's own descriptors with
// their comments (warrenFiles) and from the linked-in registry for every
// other file (health, reflection itself). Should warren's fail to load, it
// logs why and serves the linked-in registry alone, as reflection.Register
// does: the same services, without comments.
func registerReflection(s *grpc.Server, log *slog.Logger) {
	opts := reflection.ServerOptions{Services: s}
	if files, err := warrenFiles(); err != nil {
		log.Warn("gateway: reflection serves descriptors without comments", "err", err)
	} else {
		opts.DescriptorResolver = ownFirst{files}
	}
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

// ownFirst resolves from own, then from protoregistry.GlobalFiles.
type ownFirst struct{ own *protoregistry.Files }

func (r ownFirst) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.own.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

func (r ownFirst) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.own.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}
