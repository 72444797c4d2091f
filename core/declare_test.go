package core

import (
	"context"
	"errors"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/internal/brokertest"
)

func TestParseQueueType(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]QueueType{"": QueueQuorum, "quorum": QueueQuorum, "classic": QueueClassic} {
		if got, err := ParseQueueType(in); err != nil || got != want {
			t.Errorf("ParseQueueType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseQueueType("stream"); err == nil {
		t.Error("ParseQueueType(stream) succeeded, want an error")
	}
}

// equivalent reports whether the broker takes a declaration of name with
// these properties as equivalent to the existing queue's (no 406), on a
// channel of its own.
func equivalent(t testing.TB, conn *amqp.Connection, name string, durable bool, args amqp.Table) bool {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	_, err = ch.QueueDeclare(name, durable, false, false, false, args)
	var aerr *amqp.Error
	if err != nil && (!errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed) {
		t.Fatalf("redeclare %q: %v", name, err)
	}
	return err == nil
}

// TestDeclareQueueTypes: what each QueueSpec declares, checked by
// redeclaring the queue as today's tutorials (durable quorum) and as the
// older ones (classic, with no x-queue-type) do: the broker refuses an
// inequivalent declaration with 406.
func TestDeclareQueueTypes(t *testing.T) {
	t.Parallel()
	conn := brokertest.Dial(t)
	quorum := amqp.Table{"x-queue-type": "quorum"}
	tests := []struct {
		name          string
		spec          QueueSpec
		wantQuorum    bool
		wantDurable   bool // of a classic queue
		wantDeclaredT QueueType
	}{
		{name: "default", spec: QueueSpec{}, wantQuorum: true, wantDeclaredT: QueueQuorum},
		{name: "default durable", spec: QueueSpec{Durable: true}, wantQuorum: true, wantDeclaredT: QueueQuorum},
		{name: "quorum", spec: QueueSpec{Type: QueueQuorum}, wantQuorum: true, wantDeclaredT: QueueQuorum},
		{name: "classic", spec: QueueSpec{Type: QueueClassic}, wantDeclaredT: QueueClassic},
		{name: "classic durable", spec: QueueSpec{Type: QueueClassic, Durable: true}, wantDurable: true, wantDeclaredT: QueueClassic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := tt.spec
			spec.Name = brokertest.Name(t, "declare")
			if got := spec.DeclaredType(); got != tt.wantDeclaredT {
				t.Errorf("DeclaredType() = %q, want %q", got, tt.wantDeclaredT)
			}
			if _, err := DeclareQueue(conn, spec, quietLog); err != nil {
				t.Fatalf("DeclareQueue: %v", err)
			}
			if got := equivalent(t, conn, spec.Name, true, quorum); got != tt.wantQuorum {
				t.Errorf("a durable quorum redeclaration accepted: %v, want %v", got, tt.wantQuorum)
			}
			if got := equivalent(t, conn, spec.Name, tt.wantDurable, nil); got != !tt.wantQuorum {
				t.Errorf("a classic (durable %v) redeclaration accepted: %v, want %v", tt.wantDurable, got, !tt.wantQuorum)
			}
		})
	}
}

// TestDeclareQueueServerNamedStaysClassic: server-named, exclusive and
// auto-delete queues (reply and subscription queues) are classic by
// default, and asking for a quorum one fails before the broker is asked.
func TestDeclareQueueServerNamedStaysClassic(t *testing.T) {
	t.Parallel()
	conn := brokertest.Dial(t)
	for _, spec := range []QueueSpec{{Exclusive: true, AutoDelete: true}, {Name: brokertest.Name(t, "excl"), Exclusive: true}} {
		if got := spec.DeclaredType(); got != QueueClassic {
			t.Errorf("%+v: DeclaredType() = %q, want classic", spec, got)
		}
		q, err := DeclareQueue(conn, spec, quietLog)
		if err != nil {
			t.Fatalf("DeclareQueue(%+v): %v", spec, err)
		}
		if q.Name == "" {
			t.Errorf("DeclareQueue(%+v) named no queue", spec)
		}
		spec.Type = QueueQuorum
		if _, err := DeclareQueue(conn, spec, quietLog); !errors.Is(err, ErrQuorumQueueSpec) {
			t.Errorf("DeclareQueue(%+v) = %v, want ErrQuorumQueueSpec", spec, err)
		}
	}
	if _, err := DeclareQueue(conn, QueueSpec{Name: brokertest.Name(t, "stream"), Type: "stream"}, quietLog); err == nil {
		t.Error("DeclareQueue with type stream succeeded, want an error")
	}
}

func TestDeclareQueueUsesAnExistingQueueWithOtherProperties(t *testing.T) {
	t.Parallel()
	conn := brokertest.Dial(t)
	name := brokertest.Name(t, "declare")
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(context.Background(), "", name, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// A classic durable queue; warren asks for the default, quorum, and
	// then for a non-durable classic one: 406 from the broker each time.
	for _, spec := range []QueueSpec{{Name: name}, {Name: name, Type: QueueClassic}} {
		q, err := DeclareQueue(conn, spec, quietLog)
		if err != nil {
			t.Fatalf("DeclareQueue(%+v): %v", spec, err)
		}
		if q.Name != name {
			t.Errorf("queue %q, want %q", q.Name, name)
		}
	}
	// The connection survived the channel-level 406.
	if conn.IsClosed() {
		t.Error("connection closed by the 406")
	}
}
