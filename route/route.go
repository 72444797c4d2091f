// Package route serves a team's own proto services through warren, from
// descriptors alone.
//
// A service's methods carry warren's routing options
// (proto/warren/v1/options.proto); Methods reads them and checks them, and
// the gateway side of this package (Service) registers each routed service
// on the gateway's gRPC server as a real service whose methods travel over
// AMQP as their routes say. The worker side is package worker's Server,
// which reads the same options from the services registered on it.
//
// Request and reply bodies are the messages' protobuf encoding, passed
// through untouched; docs/wire-contract.md says what else travels with
// them, for workers written in any language.
package route

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// Pattern is how a method's calls travel over AMQP.
type Pattern int

const (
	// RPC: a unary call becomes a request on a queue with reply_to and
	// correlation_id; the worker's reply is the response.
	RPC Pattern = iota + 1
	// Task: a unary call becomes a persistent, confirmed publishing to a
	// durable work queue; the response carries the task's id.
	Task
	// Event: a unary call becomes a persistent, confirmed publishing to an
	// exchange, with a routing key made from the request's fields.
	Event
	// Subscribe: a server-streaming call streams the messages routed to
	// an exchange, through a queue of its own bound with keys from the
	// request.
	Subscribe
	// Stream: a server-streaming call becomes a request on a queue, as
	// for RPC; the worker's replies are the responses, until the one that
	// ends the stream with its status.
	Stream
)

func (p Pattern) String() string {
	switch p {
	case RPC:
		return "rpc"
	case Task:
		return "task"
	case Event:
		return "event"
	case Subscribe:
		return "subscribe"
	case Stream:
		return "stream"
	}
	return fmt.Sprintf("Pattern(%d)", int(p))
}

// Method is one routed method.
type Method struct {
	Desc      protoreflect.MethodDescriptor
	Pattern   Pattern
	Queue     string         // RPC: the request queue; Task: the work queue
	QueueType core.QueueType // the type workers declare Queue with
	Timeout   time.Duration  // for calls without a deadline; 0: the gateway's default
	Codec     Codec          // how messages are encoded in AMQP bodies

	// Task: the response's field that carries the task id.
	IDField protoreflect.FieldDescriptor
	// Event and Subscribe: the exchange and its kind.
	Exchange, Kind string
	// Event: the routing key's template.
	key *keyTemplate
	// Subscribe: the request's field that holds the binding keys; nil
	// for a fanout exchange that names none.
	KeysField protoreflect.FieldDescriptor
	// Subscribe: the exchange's history stream, or nil; the request's
	// fields that start a call in it and the response's field that gets
	// each message's offset, each nil when the messages have none.
	History          *core.HistoryConfig
	StartOffsetField protoreflect.FieldDescriptor
	StartTimeField   protoreflect.FieldDescriptor
	OffsetField      protoreflect.FieldDescriptor
}

// FullMethod is the method's gRPC name, "/pkg.Service/Method".
func (m Method) FullMethod() string {
	return "/" + string(m.Desc.Parent().FullName()) + "/" + string(m.Desc.Name())
}

// ErrNoRoutes: a service has no routed method.
var ErrNoRoutes = errors.New("route: no method has a route")

// Methods reads and checks the routes of sd's methods. A method without
// a route is left out: the gateway answers its calls with UNIMPLEMENTED.
// An error names the method and what is wrong with its route.
func Methods(sd protoreflect.ServiceDescriptor) ([]Method, error) {
	defaults, _ := proto.GetExtension(sd.Options(), warrenv1.E_Service).(*warrenv1.ServiceRoute)
	var methods []Method
	var errs []error
	mds := sd.Methods()
	for i := range mds.Len() {
		md := mds.Get(i)
		r, _ := proto.GetExtension(md.Options(), warrenv1.E_Route).(*warrenv1.Route)
		if r == nil {
			continue
		}
		m, err := method(md, r, defaults)
		if err != nil {
			errs = append(errs, fmt.Errorf("route: %s: %w", md.FullName(), err))
			continue
		}
		methods = append(methods, m)
	}
	// The subscribe routes on one exchange share its queue or stream.
	first := map[string]Method{}
	for _, m := range methods {
		if m.Pattern != Subscribe {
			continue
		}
		o, seen := first[m.Exchange]
		if !seen {
			first[m.Exchange] = m
			continue
		}
		if (o.History == nil) != (m.History == nil) || o.History != nil &&
			(o.History.MaxAge != m.History.MaxAge || o.History.MaxBytes != m.History.MaxBytes || o.History.SegmentBytes != m.History.SegmentBytes) {
			errs = append(errs, fmt.Errorf("route: %s: exchange %q has another history in %s: the subscribe routes of one exchange must give it the same history, or none",
				m.Desc.FullName(), m.Exchange, o.Desc.Name()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(methods) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoRoutes, sd.FullName())
	}
	return methods, nil
}

func method(md protoreflect.MethodDescriptor, r *warrenv1.Route, defaults *warrenv1.ServiceRoute) (Method, error) {
	m := Method{Desc: md}
	timeout := r.GetTimeout()
	if timeout == nil {
		timeout = defaults.GetTimeout()
	}
	if timeout != nil {
		if err := timeout.CheckValid(); err != nil || timeout.AsDuration() <= 0 {
			return m, fmt.Errorf("timeout %v: want a positive duration", timeout.AsDuration())
		}
		m.Timeout = timeout.AsDuration()
	}
	codec := r.GetCodec()
	if codec == warrenv1.Codec_CODEC_UNSPECIFIED {
		codec = defaults.GetCodec()
	}
	switch codec {
	case warrenv1.Codec_CODEC_UNSPECIFIED, warrenv1.Codec_CODEC_PROTOBUF:
		m.Codec = Protobuf
	case warrenv1.Codec_CODEC_JSON:
		m.Codec = JSON
	default:
		return m, fmt.Errorf("unknown codec %v", codec)
	}
	switch p := r.GetPattern().(type) {
	case *warrenv1.Route_Rpc:
		if md.IsStreamingClient() || md.IsStreamingServer() {
			return m, fmt.Errorf("an rpc route needs a unary method; this one is %s", streaming(md))
		}
		m.Pattern = RPC
		if err := m.setQueue(p.Rpc.GetQueue(), p.Rpc.GetQueueType(), defaults); err != nil {
			return m, err
		}
	case *warrenv1.Route_Stream:
		if md.IsStreamingClient() || !md.IsStreamingServer() {
			return m, fmt.Errorf("a stream route needs a server-streaming method; this one is %s", streaming(md))
		}
		m.Pattern = Stream
		if err := m.setQueue(p.Stream.GetQueue(), p.Stream.GetQueueType(), defaults); err != nil {
			return m, err
		}
	case *warrenv1.Route_Task:
		if md.IsStreamingClient() || md.IsStreamingServer() {
			return m, fmt.Errorf("a task route needs a unary method; this one is %s", streaming(md))
		}
		m.Pattern = Task
		if err := m.setQueue(p.Task.GetQueue(), p.Task.GetQueueType(), defaults); err != nil {
			return m, err
		}
		name := p.Task.GetIdField()
		if name == "" {
			name = "task_id"
		}
		fd := md.Output().Fields().ByName(protoreflect.Name(name))
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
			return m, fmt.Errorf("a task route's response %s needs a string field %q for the task id (id_field)", md.Output().FullName(), name)
		}
		m.IDField = fd
	case *warrenv1.Route_Event:
		if md.IsStreamingClient() || md.IsStreamingServer() {
			return m, fmt.Errorf("an event route needs a unary method; this one is %s", streaming(md))
		}
		m.Pattern = Event
		if err := m.setExchange("an event", p.Event.GetExchange(), p.Event.GetKind()); err != nil {
			return m, err
		}
		key, err := parseKeyTemplate(p.Event.GetRoutingKey(), md.Input())
		if err != nil {
			return m, err
		}
		m.key = key
	case *warrenv1.Route_Subscribe:
		if md.IsStreamingClient() || !md.IsStreamingServer() {
			return m, fmt.Errorf("a subscribe route needs a server-streaming method; this one is %s", streaming(md))
		}
		m.Pattern = Subscribe
		if err := m.setExchange("a subscribe", p.Subscribe.GetExchange(), p.Subscribe.GetKind()); err != nil {
			return m, err
		}
		name := p.Subscribe.GetKeysField()
		if name == "" {
			name = "binding_keys"
		}
		fd := md.Input().Fields().ByName(protoreflect.Name(name))
		switch {
		case fd == nil && m.Kind == amqp.ExchangeFanout && p.Subscribe.GetKeysField() == "":
			// A fanout exchange routes everything: no keys needed.
		case fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsMap():
			return m, fmt.Errorf("a subscribe route's request %s needs a string field %q for the binding keys (keys_field)", md.Input().FullName(), name)
		default:
			m.KeysField = fd
		}
		if h := p.Subscribe.GetHistory(); h != nil {
			if err := m.setHistory(h); err != nil {
				return m, err
			}
		}
	case nil:
		return m, errors.New("the route names no pattern (set one of its fields, such as rpc)")
	default:
		return m, fmt.Errorf("pattern %T is not served by this warren", p)
	}
	return m, nil
}

// setQueue sets an rpc, stream or task route's queue (by default the
// method's full name) and its type.
func (m *Method) setQueue(name string, t warrenv1.QueueType, defaults *warrenv1.ServiceRoute) error {
	if name == "" {
		name = string(m.Desc.FullName())
	}
	if err := checkQueueName(name); err != nil {
		return err
	}
	qt, err := queueType(t, defaults.GetQueueType())
	if err != nil {
		return err
	}
	m.Queue, m.QueueType = name, qt
	return nil
}

// setExchange sets an event or subscribe route's exchange and kind.
func (m *Method) setExchange(what, name, kind string) error {
	if name == "" {
		return fmt.Errorf("%s route needs an exchange", what)
	}
	if len(name) > core.MaxKeyLen {
		return fmt.Errorf("exchange name of %d bytes: the broker takes at most %d", len(name), core.MaxKeyLen)
	}
	switch kind {
	case "":
		kind = amqp.ExchangeTopic
	case amqp.ExchangeTopic, amqp.ExchangeDirect, amqp.ExchangeFanout:
	default:
		return fmt.Errorf("exchange kind %q: want topic, direct or fanout", kind)
	}
	m.Exchange, m.Kind = name, kind
	return nil
}

func streaming(md protoreflect.MethodDescriptor) string {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return "bidirectional-streaming"
	case md.IsStreamingClient():
		return "client-streaming"
	case md.IsStreamingServer():
		return "server-streaming"
	}
	return "unary"
}

// checkQueueName refuses the queue names the broker would refuse.
func checkQueueName(name string) error {
	switch {
	case len(name) > 255:
		return fmt.Errorf("queue name of %d bytes: the broker takes at most 255", len(name))
	case strings.HasPrefix(name, "amq."):
		return fmt.Errorf("queue %q: names starting with amq. are the broker's", name)
	}
	return nil
}

// queueType resolves a method's queue type against its service's default;
// both unspecified mean quorum, as today's official tutorials declare.
func queueType(method, service warrenv1.QueueType) (core.QueueType, error) {
	t := method
	if t == warrenv1.QueueType_QUEUE_TYPE_UNSPECIFIED {
		t = service
	}
	switch t {
	case warrenv1.QueueType_QUEUE_TYPE_UNSPECIFIED, warrenv1.QueueType_QUEUE_TYPE_QUORUM:
		return core.QueueQuorum, nil
	case warrenv1.QueueType_QUEUE_TYPE_CLASSIC:
		return core.QueueClassic, nil
	}
	return "", fmt.Errorf("unknown queue type %v", t)
}

// WithPrefix returns methods with prefix put before the names of their
// queues and exchanges (but the broker's own amq.* exchanges), so that
// several deployments, or tests, share a vhost.
func WithPrefix(methods []Method, prefix string) []Method {
	if prefix == "" {
		return methods
	}
	out := slices.Clone(methods)
	for i := range out {
		if out[i].Queue != "" {
			out[i].Queue = prefix + out[i].Queue
		}
		if out[i].Exchange != "" && !strings.HasPrefix(out[i].Exchange, "amq.") {
			out[i].Exchange = prefix + out[i].Exchange
		}
		if h := out[i].History; h != nil {
			c := *h
			c.Stream = prefix + c.Stream
			out[i].History = &c
		}
	}
	return out
}

// History's defaults, as LogService's --log-history.
const (
	defaultHistoryMaxAge       = 24 * time.Hour
	defaultHistoryMaxBytes     = 1 << 30
	defaultHistorySegmentBytes = 64 << 20
)

// setHistory sets a subscribe route's history and checks the fields it
// names.
func (m *Method) setHistory(h *warrenv1.SubscribeHistory) error {
	if strings.HasPrefix(m.Exchange, "amq.") {
		// The broker refuses queues named amq.*, and the stream is named
		// after its exchange.
		return fmt.Errorf("a history needs an exchange of your own: the stream is named after it, and names starting with amq. are the broker's (%q)", m.Exchange)
	}
	cfg := &core.HistoryConfig{
		Stream:       m.Exchange + ".history",
		MaxAge:       defaultHistoryMaxAge,
		MaxBytes:     h.GetMaxBytes(),
		SegmentBytes: h.GetSegmentBytes(),
	}
	if d := h.GetMaxAge(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < time.Second {
			return fmt.Errorf("the history's max_age %v is not a duration of a second or more", d.AsDuration())
		}
		cfg.MaxAge = d.AsDuration()
	}
	switch {
	case cfg.MaxBytes < 0 || cfg.SegmentBytes < 0:
		return fmt.Errorf("the history's max_bytes (%d) and segment_bytes (%d) must not be negative", cfg.MaxBytes, cfg.SegmentBytes)
	case cfg.MaxBytes == 0:
		cfg.MaxBytes = defaultHistoryMaxBytes
	}
	if cfg.SegmentBytes == 0 {
		cfg.SegmentBytes = defaultHistorySegmentBytes
	}
	m.History = cfg

	in, out := m.Desc.Input(), m.Desc.Output()
	var err error
	m.StartOffsetField, err = historyField(in, h.GetStartOffsetField(), "start_offset", "start_offset_field",
		"an int64 field with presence (proto3 optional)", func(fd protoreflect.FieldDescriptor) bool {
			return fd.Kind() == protoreflect.Int64Kind && fd.HasPresence() && !fd.IsList()
		})
	if err != nil {
		return err
	}
	m.StartTimeField, err = historyField(in, h.GetStartTimeField(), "start_time", "start_time_field",
		"a google.protobuf.Timestamp field", func(fd protoreflect.FieldDescriptor) bool {
			return fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && fd.Message().FullName() == "google.protobuf.Timestamp"
		})
	if err != nil {
		return err
	}
	m.OffsetField, err = historyField(out, h.GetOffsetField(), "offset", "offset_field",
		"an int64 or uint64 field", func(fd protoreflect.FieldDescriptor) bool {
			return (fd.Kind() == protoreflect.Int64Kind || fd.Kind() == protoreflect.Uint64Kind) && !fd.IsList()
		})
	return err
}

// historyField is the field of msg that a history option names (option),
// or the one named def when the option is empty and msg has it; nil when
// neither. A field that is missing or of another type than ok accepts is
// an error that names it.
func historyField(msg protoreflect.MessageDescriptor, name, def, option, want string, ok func(protoreflect.FieldDescriptor) bool) (protoreflect.FieldDescriptor, error) {
	explicit := name != ""
	if !explicit {
		name = def
	}
	fd := msg.Fields().ByName(protoreflect.Name(name))
	switch {
	case fd == nil && !explicit:
		return nil, nil
	case fd == nil:
		return nil, fmt.Errorf("the history's %s names %q, which %s does not have", option, name, msg.FullName())
	case !ok(fd):
		return nil, fmt.Errorf("the history's %s: %s.%s must be %s", option, msg.FullName(), name, want)
	}
	return fd, nil
}
