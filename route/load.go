package route

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	// The routing options must be known when the sets are parsed, or they
	// would stay unknown fields of the methods' options.
	_ "github.com/warrenrpc/warren/gen/warren/v1"
)

// ReadFiles reads descriptor sets, each a binary FileDescriptorSet with
// its imports as `buf build -o app.binpb` or `protoc --include_imports
// --descriptor_set_out=app.binpb` writes, into one registry. A file may be
// in several sets if it is the same file in each. Errors name the set and
// what is wrong with it, such as an import that none of the sets holds.
func ReadFiles(paths ...string) (*protoregistry.Files, error) {
	byName := map[string]*descriptorpb.FileDescriptorProto{}
	from := map[string]string{} // file name → the set it came from
	var order []string
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("route: descriptor set: %w", err)
		}
		var set descriptorpb.FileDescriptorSet
		if err := proto.Unmarshal(b, &set); err != nil {
			return nil, fmt.Errorf("route: %s is not a FileDescriptorSet: %w", path, err)
		}
		if len(set.GetFile()) == 0 {
			return nil, fmt.Errorf("route: %s is not a FileDescriptorSet: it holds no file", path)
		}
		for _, fd := range set.GetFile() {
			name := fd.GetName()
			if prev, ok := byName[name]; ok {
				if !sameFile(prev, fd) {
					return nil, fmt.Errorf("route: %s and %s hold different files named %q", from[name], path, name)
				}
				continue
			}
			byName[name], from[name] = fd, path
			order = append(order, name)
		}
	}
	var set descriptorpb.FileDescriptorSet
	for _, name := range order {
		set.File = append(set.File, byName[name])
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("route: descriptor sets %v: %w (build them with their imports: buf build, or protoc --include_imports)", paths, err)
	}
	return files, nil
}

func sameFile(a, b *descriptorpb.FileDescriptorProto) bool {
	// Source info differs between builds of the same file.
	a, b = proto.Clone(a).(*descriptorpb.FileDescriptorProto), proto.Clone(b).(*descriptorpb.FileDescriptorProto)
	a.SourceCodeInfo, b.SourceCodeInfo = nil, nil
	ma, _ := proto.MarshalOptions{Deterministic: true}.Marshal(a)
	mb, _ := proto.MarshalOptions{Deterministic: true}.Marshal(b)
	return bytes.Equal(ma, mb)
}

// Routes are a service's routed methods.
type Routes struct {
	Desc    protoreflect.ServiceDescriptor
	Methods []Method
	// Files holds Desc's file and its imports, for reflection.
	Files *protoregistry.Files
}

// Services returns the services in files that have at least one routed
// method, with their methods, by name; a service whose routes are wrong
// is an error that names the method.
func Services(files *protoregistry.Files) ([]Routes, error) {
	var out []Routes
	var errs []error
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		svcs := fd.Services()
		for i := range svcs.Len() {
			sd := svcs.Get(i)
			methods, err := Methods(sd)
			switch {
			case errors.Is(err, ErrNoRoutes):
			case err != nil:
				errs = append(errs, err)
			default:
				out = append(out, Routes{Desc: sd, Methods: methods, Files: files})
			}
		}
		return true
	})
	slices.SortFunc(out, func(a, b Routes) int { return strings.Compare(string(a.Desc.FullName()), string(b.Desc.FullName())) })
	errs = append(errs, exchangeKinds(out))
	return out, errors.Join(errs...)
}

// exchangeKinds refuses two routes that name one exchange with two kinds:
// the broker would refuse the second declaration.
func exchangeKinds(all []Routes) error {
	first := map[string]Method{}
	for _, r := range all {
		for _, m := range r.Methods {
			if m.Exchange == "" {
				continue
			}
			if f, ok := first[m.Exchange]; !ok {
				first[m.Exchange] = m
			} else if f.Kind != m.Kind {
				return fmt.Errorf("route: %s and %s name the exchange %q as %s and as %s", f.Desc.FullName(), m.Desc.FullName(), m.Exchange, f.Kind, m.Kind)
			}
		}
	}
	return nil
}

// FileSet is the FileDescriptorSet of files and everything they import,
// each file after its imports, as `buf build -o` writes one: for a program
// that serves compiled-in services through route, or writes their set.
func FileSet(files ...protoreflect.FileDescriptor) *descriptorpb.FileDescriptorSet {
	var set descriptorpb.FileDescriptorSet
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range files {
		add(fd)
	}
	return &set
}
