package core

import (
	"errors"
	"fmt"
	"log/slog"

	amqp "github.com/rabbitmq/amqp091-go"
)

// QueueType selects the kind of queue warren declares.
type QueueType string

// Queue types. Classic is what the tutorials declare; quorum is for clusters.
const (
	QueueClassic QueueType = "classic"
	QueueQuorum  QueueType = "quorum"
)

// ParseQueueType reads a --queue-type flag value; "" means classic.
func ParseQueueType(s string) (QueueType, error) {
	switch QueueType(s) {
	case "", QueueClassic:
		return QueueClassic, nil
	case QueueQuorum:
		return QueueQuorum, nil
	}
	return "", fmt.Errorf("core: unknown queue type %q (want classic or quorum)", s)
}

// QueueSpec describes a queue the way warren declares it.
type QueueSpec struct {
	Name       string
	Durable    bool
	AutoDelete bool
	Exclusive  bool
	// Type "" or QueueClassic declares a classic queue with no x-queue-type
	// argument, exactly as the tutorials do; QueueQuorum adds
	// x-queue-type=quorum and makes the queue durable.
	Type QueueType
	// Args are further x-arguments.
	Args amqp.Table
}

// DeclareQueue declares spec on a channel of its own, which it closes.
//
// A queue that already exists with other properties (the broker answers 406
// PRECONDITION_FAILED, as it does when the current official tutorial
// declared rpc_queue as a durable quorum queue) is used as it is: DeclareQueue
// logs a warning and returns the existing queue. That keeps warren working
// beside tutorial scripts of any vintage.
func DeclareQueue(conn *amqp.Connection, spec QueueSpec, log *slog.Logger) (amqp.Queue, error) {
	if log == nil {
		log = slog.Default()
	}
	args := amqp.Table{}
	for k, v := range spec.Args {
		args[k] = v
	}
	durable := spec.Durable
	if spec.Type == QueueQuorum {
		args["x-queue-type"] = string(QueueQuorum)
		durable = true
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
