package core_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
)

// prefixGuard allows the keys of one exchange that start with prefix, and
// records what it was asked.
type prefixGuard struct {
	exchange, prefix string
	asked            []string
}

func (g *prefixGuard) AllowKey(op core.KeyOp, exchange, key string) error {
	g.asked = append(g.asked, fmt.Sprintf("%s %s %s", op, exchange, key))
	if exchange == g.exchange && len(key) >= len(g.prefix) && key[:len(g.prefix)] == g.prefix {
		return nil
	}
	return errors.New("not this tenant's key")
}

func TestCheckScope(t *testing.T) {
	t.Parallel()
	g := &prefixGuard{exchange: "topic_logs", prefix: "tenant.x."}
	ctx := core.WithKeyGuard(context.Background(), g)
	if err := core.CheckScope(ctx, core.KeyEmit, "topic_logs", "tenant.x.a"); err != nil {
		t.Errorf("a key in scope: %v", err)
	}
	err := core.CheckScope(ctx, core.KeySubscribe, "topic_logs", "#")
	var se *core.ScopeError
	if !errors.As(err, &se) || !errors.Is(err, core.ErrOutOfScope) || se.Op != core.KeySubscribe || se.Key != "#" {
		t.Fatalf("a key out of scope: %v, want a ScopeError for subscribe #", err)
	}
	if got := status.Code(core.Status(fmt.Errorf("subscribe: %w", err))); got != codes.PermissionDenied {
		t.Errorf("Status of a ScopeError: %v, want PermissionDenied", got)
	}
	if err := core.CheckScope(context.Background(), core.KeyEmit, "topic_logs", "#"); err != nil {
		t.Errorf("no guard: %v, want nil", err)
	}
}

// TestScopeIsCheckedBeforeTheBroker: the Publisher and the Subscriber ask
// the guard first, so a key out of scope fails as such even with no
// connection, and nothing is declared or published.
func TestScopeIsCheckedBeforeTheBroker(t *testing.T) {
	t.Parallel()
	sup := core.NewSupervisor(core.Config{})
	pub := core.NewPublisher(sup, core.PublisherConfig{})
	subs := core.NewSubscriber(sup)
	g := &prefixGuard{exchange: "topic_logs", prefix: "tenant.x."}
	ctx := core.WithKeyGuard(context.Background(), g)

	_, err := pub.PublishDeferred(ctx, &core.Message{Exchange: "topic_logs", RoutingKey: "tenant.y.a"})
	if !errors.Is(err, core.ErrOutOfScope) {
		t.Errorf("PublishDeferred out of scope: %v, want ErrOutOfScope", err)
	}
	err = pub.Publish(ctx, &core.Message{Exchange: "topic_logs", RoutingKey: "tenant.x.a"})
	if !errors.Is(err, core.ErrNotConnected) {
		t.Errorf("Publish in scope: %v, want ErrNotConnected (past the guard)", err)
	}
	_, err = subs.Subscribe(ctx, core.SubscriptionConfig{Bindings: []core.Binding{
		{Exchange: "topic_logs", Key: "tenant.x.#"}, {Exchange: "topic_logs", Key: "#"},
	}})
	if !errors.Is(err, core.ErrOutOfScope) {
		t.Errorf("Subscribe with one binding out of scope: %v, want ErrOutOfScope", err)
	}
	want := []string{"emit topic_logs tenant.y.a", "emit topic_logs tenant.x.a", "subscribe topic_logs tenant.x.#", "subscribe topic_logs #"}
	if fmt.Sprint(g.asked) != fmt.Sprint(want) {
		t.Errorf("the guard was asked %q, want %q", g.asked, want)
	}
}
