package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	"github.com/warrenrpc/warren/core"
)

const defaultAddr = "127.0.0.1:50051"

// clientFlags are the flags of the commands that call the gateway.
type clientFlags struct {
	addr    string
	timeout time.Duration
	sec     clientSecurityFlags
}

// register adds --addr, and --timeout described by timeoutUsage.
func (f *clientFlags) register(cmd *cobra.Command, timeoutUsage string) {
	cmd.Flags().StringVar(&f.addr, "addr", defaultAddr, "gateway address (host:port)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, timeoutUsage)
	f.sec.register(cmd)
}

// dial connects to the gateway; grpc connects lazily, so the first call
// reports an unreachable gateway.
func (f *clientFlags) dial() (*grpc.ClientConn, error) {
	opts, err := f.sec.dialOptions(f.addr)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(f.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", f.addr, err)
	}
	return conn, nil
}

// call dials the gateway and runs do with the call's deadline (--timeout);
// an error of do's gRPC call becomes the CLI's (callError).
func (f *clientFlags) call(ctx context.Context, do func(ctx context.Context, conn *grpc.ClientConn) error) error {
	conn, err := f.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if err := do(ctx, conn); err != nil {
		return callError(err)
	}
	return nil
}

// amqpFlags are the broker flags of the commands that connect to RabbitMQ.
type amqpFlags struct {
	url       string
	heartbeat time.Duration
	tls       amqpTLSFlags // amqptls.go
	tracing   core.Tracing // set by trace (tracing.go)
	logFlags
}

func (f *amqpFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.url, "amqp-url", core.DefaultURL, "broker URL; several, comma-separated, are tried in turn")
	fs.DurationVar(&f.heartbeat, "heartbeat", 10*time.Second, "AMQP heartbeat interval")
	f.tls.register(cmd)
	f.logFlags.register(cmd)
}

func (f *amqpFlags) config(name string, log *slog.Logger) (core.Config, error) {
	var urls []string
	for u := range strings.SplitSeq(f.url, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	cfg := core.Config{URLs: urls, Name: name, Heartbeat: f.heartbeat, Logger: log, Tracing: f.tracing}
	err := f.tls.apply(&cfg)
	return cfg, err
}

// levelValue is a pflag.Value for a slog.Level ("debug", "warn", "info+2").
type levelValue slog.Level

func (l *levelValue) String() string { return strings.ToLower((*slog.Level)(l).String()) }
func (l *levelValue) Type() string   { return "level" }
func (l *levelValue) Set(s string) error {
	return (*slog.Level)(l).UnmarshalText([]byte(s))
}

// enumValue is a pflag.Value that accepts one of a few words, so that a
// wrong one is a usage error when the flags are parsed.
type enumValue struct {
	value   *string
	allowed []string
}

func (e *enumValue) String() string { return *e.value }
func (e *enumValue) Type() string   { return strings.Join(e.allowed, "|") }
func (e *enumValue) Set(s string) error {
	if !slices.Contains(e.allowed, s) {
		return fmt.Errorf("want %s", oneOf(e.allowed))
	}
	*e.value = s
	return nil
}

// enumFlag defines --name, one of allowed, with shell completion of them.
func enumFlag(cmd *cobra.Command, p *string, name, value, usage string, allowed ...string) {
	*p = value
	cmd.Flags().Var(&enumValue{value: p, allowed: allowed}, name, usage)
	enumCompletion(cmd, name, allowed...)
}

func enumCompletion(cmd *cobra.Command, name string, words ...string) {
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp))
}

// oneOf reads "a, b or c".
func oneOf(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// flagNames lists the names of fs's visible flags.
func flagNames(fs *pflag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	return names
}
