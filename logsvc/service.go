package logsvc

import (
	"google.golang.org/grpc"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// Service implements warren.v1.LogService on the core: a core.Publisher
// for emits, a core.Subscriber for subscriptions and a Component of its own
// that declares the exchanges. It implements gateway.Service: build it with
// New and hand it to gateway.New, which attaches and registers it.
type Service struct {
	warrenv1.UnimplementedLogServiceServer

	cfg Config
	ex  *exchanges
	pub *core.Publisher
	mux map[string]*core.Mux // by exchange name: one queue and consumer each
}

var _ warrenv1.LogServiceServer = (*Service)(nil)

// New returns a Service; it serves once a gateway attached it.
func New(cfg Config) *Service { return &Service{cfg: cfg.withDefaults()} }

// Name implements gateway.Service.
func (s *Service) Name() string { return warrenv1.LogService_ServiceDesc.ServiceName }

// Attach implements gateway.Service: the exchanges' Component first, so
// that the exchanges exist on every connection before anything is
// published to them, then one core.Mux per exchange, which carries all of
// that exchange's subscriptions on one queue (and binds its history
// stream, if any), then the Publisher.
//
// The Publisher has a single channel: every emit goes out on it in the
// order it was made, so the messages of one EmitLogs stream reach their
// queues in the stream's order (round-robin over several channels would
// not keep it), as they did from the tutorials' one-channel emitters.
func (s *Service) Attach(sup *core.Supervisor) {
	log := s.cfg.Logger
	if log == nil {
		log = sup.Logger()
	}
	for _, ex := range s.cfg.exchanges() {
		sup.Known(ex.name) // labels of the metrics
	}
	s.ex = &exchanges{list: s.cfg.exchanges(), inspect: core.NewInspector(sup, core.InspectorConfig{Timeout: s.cfg.DefaultTimeout}), log: log}
	sup.Add(s.ex)
	// The Muxes before the Publisher: a Mux with a history binds its
	// stream when it connects, so that what is emitted is kept from the
	// first emit on.
	s.mux = map[string]*core.Mux{}
	for _, ex := range s.cfg.exchanges() {
		s.mux[ex.name] = core.NewMux(sup, core.MuxConfig{
			Exchange: ex.name, Kind: ex.kind, Prefetch: s.cfg.Prefetch, MaxLength: s.cfg.MaxLength,
			History: s.cfg.History.core(ex.name),
		})
	}
	s.pub = core.NewPublisher(sup, core.PublisherConfig{Channels: 1, Timeout: s.cfg.DefaultTimeout})
	// An exchange declared again lost its bindings: bind the live
	// subscriptions' keys once more.
	s.ex.rebind = func(name string) error { return s.mux[name].Rebind() }
}

// Register implements gateway.Service: LogService as generated, with
// SubscribeLogs served by subscribeLogsHandler (handler.go), which reads
// its request as bytes: the server must run with frame.Codec as its codec,
// as gateway.New's does.
func (s *Service) Register(r grpc.ServiceRegistrar) { r.RegisterService(serviceDesc(), s) }
