package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
)

// signals is main's handling of SIGINT and SIGTERM. The first cancels the
// command's context, whose cause is then a *signalError, and is logged by
// the command's logger, if it has one (logSignalsTo): the command shuts
// down, logging its drain. The second ends the process at once, without
// waiting for the drain, with the status a shell gives a process the
// signal killed (128+n: 130 for SIGINT, 143 for SIGTERM).
type signals struct {
	log    atomic.Pointer[slog.Logger]
	stderr io.Writer
	exit   func(code int)
}

type signalsKey struct{}

// signalError is the cause of the context notifySignals cancels.
type signalError struct{ sig os.Signal }

func (e *signalError) Error() string { return "received " + e.sig.String() }

// notifySignals returns a context that the first SIGINT or SIGTERM
// cancels, and the function that stops the handling (main calls it before
// it exits). A second signal calls exit with 128+n.
func notifySignals(parent context.Context, stderr io.Writer, exit func(int)) (context.Context, func()) {
	s := &signals{stderr: stderr, exit: exit}
	ctx, cancel := context.WithCancelCause(context.WithValue(parent, signalsKey{}, s))
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		received := 0
		for {
			select {
			case <-done:
				return
			case sig := <-ch:
				received++
				if received == 1 {
					if log := s.log.Load(); log != nil {
						log.Info("signal received; shutting down (a second one exits at once)", "signal", sig.String())
					}
					cancel(&signalError{sig})
					continue
				}
				log := s.log.Load()
				if log == nil {
					log = slog.New(slog.NewTextHandler(s.stderr, nil))
				}
				log.Error("second signal; exiting without waiting for the drain", "signal", sig.String())
				s.exit(exitStatus(sig))
				return
			}
		}
	})
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		wg.Wait()
		cancel(nil)
	}
}

// logSignalsTo makes log the logger of the signal handling of ctx, if
// ctx comes from notifySignals.
func logSignalsTo(ctx context.Context, log *slog.Logger) {
	if s, ok := ctx.Value(signalsKey{}).(*signals); ok {
		s.log.Store(log)
	}
}

// exitStatus is 128+n for signal n, as shells report a process a signal
// ended.
func exitStatus(sig os.Signal) int {
	if n, ok := sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}
