package core

import (
	"context"
	"errors"
	"fmt"
)

// KeyOp is what a call does with a key on an exchange.
type KeyOp string

// The operations a KeyGuard rules on.
const (
	// KeyEmit: publish to the exchange with the key as routing key.
	KeyEmit KeyOp = "emit"
	// KeySubscribe: bind a queue to the exchange with the key as binding
	// key (a topic pattern on a topic exchange).
	KeySubscribe KeyOp = "subscribe"
)

// ErrOutOfScope: the caller may not use the routing or binding key on the
// exchange. Status maps it to PERMISSION_DENIED.
var ErrOutOfScope = errors.New("core: key outside the caller's scope")

// A KeyGuard rules on the keys of one call: which routing keys it may
// publish with and which binding keys it may bind with, per exchange.
// Package auth implements it on routing-key scopes. Its methods are
// called from the call's goroutines, so they are safe for concurrent use,
// and they never block.
type KeyGuard interface {
	// AllowKey returns nil when the call may use key for op on exchange,
	// or why not.
	AllowKey(op KeyOp, exchange, key string) error
}

type keyGuardKey struct{}

// WithKeyGuard returns ctx carrying g: every publishing and binding made
// under the returned context asks g first (CheckScope).
func WithKeyGuard(ctx context.Context, g KeyGuard) context.Context {
	return context.WithValue(ctx, keyGuardKey{}, g)
}

// ScopeError is a key a call may not use. It matches ErrOutOfScope with
// errors.Is.
type ScopeError struct {
	Op       KeyOp
	Exchange string
	Key      string
	// Reason is the KeyGuard's answer.
	Reason error
}

func (e *ScopeError) Error() string {
	return fmt.Sprintf("core: may not %s on exchange %q with key %q: %v", e.Op, e.Exchange, e.Key, e.Reason)
}

// Is reports a ScopeError as ErrOutOfScope.
func (e *ScopeError) Is(target error) bool { return target == ErrOutOfScope }

// Unwrap returns the guard's reason.
func (e *ScopeError) Unwrap() error { return e.Reason }

// CheckScope asks the KeyGuard of ctx (WithKeyGuard) whether the call may
// use key for op on exchange: nil when it may or when ctx has no guard,
// else a *ScopeError. Publisher.PublishDeferred (so Publish too) checks
// every publishing's routing key, and Subscriber.Subscribe every binding
// key, before anything reaches the broker; a service checks nothing
// itself.
func CheckScope(ctx context.Context, op KeyOp, exchange, key string) error {
	g, ok := ctx.Value(keyGuardKey{}).(KeyGuard)
	if !ok || g == nil {
		return nil
	}
	if err := g.AllowKey(op, exchange, key); err != nil {
		return &ScopeError{Op: op, Exchange: exchange, Key: key, Reason: err}
	}
	return nil
}
