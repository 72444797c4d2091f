package core

import (
	"errors"
	"fmt"
	"log/slog"

	amqp "github.com/rabbitmq/amqp091-go"
)

// QueueType selects the kind of queue warren declares for a named queue
// (the RPC queue, the work queue, the hello queue). The empty QueueType
// means DefaultQueueType.
type QueueType string

// Queue types.
const (
	// QueueQuorum is a durable, replicated quorum queue
	// (x-queue-type: quorum), as today's official RabbitMQ tutorials
	// declare hello, task_queue and rpc_queue. It is the default.
	QueueQuorum QueueType = "quorum"
	// QueueClassic is a classic queue declared with no x-queue-type
	// argument, durable or not as the QueueSpec says: exactly what the
	// older tutorials (the seed's scripts) declare.
	QueueClassic QueueType = "classic"
)

// DefaultQueueType is the type of a named queue whose QueueType is empty:
// what today's official tutorials declare, so that they and warren share
// the queue in either start order.
const DefaultQueueType = QueueQuorum

// ParseQueueType reads a --queue-type flag value: "quorum", "classic", or
// "" for DefaultQueueType.
func ParseQueueType(s string) (QueueType, error) {
	switch QueueType(s) {
	case "":
		return DefaultQueueType, nil
	case QueueClassic, QueueQuorum:
		return QueueType(s), nil
	}
	return "", fmt.Errorf("core: unknown queue type %q (want quorum or classic)", s)
}

// QueueSpec describes a queue the way warren declares it.
type QueueSpec struct {
	// Name is the queue's name; "" asks the broker to name it (a
	// server-named queue, as the tutorials' reply and subscription queues
	// are).
	Name string
	// Durable is the durable flag of a classic queue; a quorum queue is
	// always durable.
	Durable    bool
	AutoDelete bool
	Exclusive  bool
	// Type is the queue's type. Default (""): DefaultQueueType, quorum,
	// for a named queue that is neither exclusive nor auto-delete; classic
	// for a server-named, exclusive or auto-delete queue, which a quorum
	// queue cannot be. QueueQuorum adds x-queue-type=quorum and makes the
	// queue durable; QueueClassic declares the queue as the older
	// tutorials do, with no x-queue-type argument.
	Type QueueType
	// Args are further x-arguments.
	Args amqp.Table
}

// ErrQuorumQueueSpec reports a QueueSpec that asks for a quorum queue that
// is server-named, exclusive or auto-delete, which the broker refuses.
var ErrQuorumQueueSpec = errors.New("core: a quorum queue cannot be server-named, exclusive or auto-delete")

// DeclaredType returns the type spec declares: its Type, or what the empty
// Type means for it.
func (s QueueSpec) DeclaredType() QueueType {
	switch {
	case s.Type != "":
		return s.Type
	case s.Name == "" || s.Exclusive || s.AutoDelete:
		return QueueClassic
	}
	return DefaultQueueType
}

// DeclareQueue declares spec on a channel of its own, which it closes.
//
// A queue that already exists with other properties (the broker answers 406
// PRECONDITION_FAILED, as it does when an older tutorial script declared
// rpc_queue as a plain classic queue and warren asks for a quorum one) is
// used as it is: DeclareQueue logs a warning and returns the existing
// queue. That keeps warren working beside tutorial scripts of any vintage,
// whichever started first; the scripts themselves are not so lenient, so
// the type warren declares should be theirs (see QueueSpec.Type).
func DeclareQueue(conn *amqp.Connection, spec QueueSpec, log *slog.Logger) (amqp.Queue, error) {
	if log == nil {
		log = slog.Default()
	}
	args := amqp.Table{}
	for k, v := range spec.Args {
		args[k] = v
	}
	durable := spec.Durable
	switch typ := spec.DeclaredType(); typ {
	case QueueQuorum:
		if spec.Name == "" || spec.Exclusive || spec.AutoDelete {
			return amqp.Queue{}, fmt.Errorf("declare queue %q: %w", spec.Name, ErrQuorumQueueSpec)
		}
		args["x-queue-type"] = string(QueueQuorum)
		durable = true
	case QueueClassic:
	default:
		return amqp.Queue{}, fmt.Errorf("declare queue %q: core: unknown queue type %q", spec.Name, typ)
	}
	if len(args) == 0 {
		args = nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return amqp.Queue{}, ChannelError("open channel", err)
	}
	q, err := ch.QueueDeclare(spec.Name, durable, spec.AutoDelete, spec.Exclusive, false, args)
	if err == nil {
		_ = ch.Close()
		return q, nil
	}
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed {
		return amqp.Queue{}, fmt.Errorf("declare queue %q: %w", spec.Name, err)
	}
	// The 406 closed the channel; look at the existing queue on a new one.
	ch, err = conn.Channel()
	if err != nil {
		return amqp.Queue{}, ChannelError("open channel", err)
	}
	defer ch.Close()
	q, perr := ch.QueueDeclarePassive(spec.Name, false, false, false, false, nil)
	if perr != nil {
		return amqp.Queue{}, fmt.Errorf("declare queue %q: %w (and passive declare: %v)", spec.Name, err, perr)
	}
	log.Warn("queue exists with other properties; using it as it is",
		"queue", spec.Name, "wanted_durable", durable, "wanted_args", args, "broker", aerr.Reason)
	return q, nil
}

// ExchangeSpec describes an exchange the way warren declares it.
type ExchangeSpec struct {
	Name    string
	Kind    string // amqp.ExchangeFanout, ExchangeDirect, ExchangeTopic ...
	Durable bool
}

// DeclareExchange declares spec on a channel of its own, which it closes.
// An exchange that already exists with other properties (the broker
// answers 406 PRECONDITION_FAILED: a tutorial script declared it
// otherwise) is used as it is, with a warning, as DeclareQueue does for
// queues.
func DeclareExchange(conn *amqp.Connection, spec ExchangeSpec, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	ch, err := conn.Channel()
	if err != nil {
		return ChannelError("open channel", err)
	}
	err = ch.ExchangeDeclare(spec.Name, spec.Kind, spec.Durable, false, false, false, nil)
	if err == nil {
		_ = ch.Close()
		return nil
	}
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed {
		return ChannelError(fmt.Sprintf("declare exchange %q", spec.Name), err)
	}
	// The 406 closed the channel; look at the existing exchange on a new one.
	if ch, err = conn.Channel(); err != nil {
		return ChannelError("open channel", err)
	}
	defer ch.Close()
	if perr := ch.ExchangeDeclarePassive(spec.Name, spec.Kind, false, false, false, false, nil); perr != nil {
		return fmt.Errorf("declare exchange %q: %w (and passive declare: %v)", spec.Name, aerr, perr)
	}
	log.Warn("exchange exists with other properties; using it as it is",
		"exchange", spec.Name, "wanted_kind", spec.Kind, "wanted_durable", spec.Durable, "broker", aerr.Reason)
	return nil
}
