package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

const logUsage = `usage:
  warren log emit [--addr ADDR] [--exchange fanout|direct|topic] [--routing-key KEY] [MESSAGE...]
  warren log tail [--addr ADDR] [--exchange fanout|direct|topic] [KEY...]

emit is emit_log.py, emit_log_direct.py and emit_log_topic.py: it publishes
MESSAGE (default "info: Hello World!" for fanout, "Hello World!" otherwise)
with the routing key (default "info" for direct, "anonymous.info" for topic).

tail is receive_logs.py, receive_logs_direct.py and receive_logs_topic.py:
it subscribes with the binding KEYs (severities for direct, patterns such as
"kern.*" or "#" for topic; at least one for both) and prints one line per
message, "[routing_key] body", on stdout until interrupted.
`

// logCommand runs "warren log ARGS...". It returns nil when ctx ends a
// tail.
func logCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, logUsage)
		return errors.New("warren log: emit or tail?")
	}
	switch args[0] {
	case "emit":
		return logEmit(ctx, args[1:], stdout, stderr)
	case "tail":
		return logTail(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, logUsage)
		return nil
	}
	fmt.Fprint(stderr, logUsage)
	return fmt.Errorf("warren log: unknown command %q", args[0])
}

// logFlags are the flags both subcommands take.
type logFlags struct {
	addr     string
	exchange string
}

func (f *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", defaultAddr, "gateway gRPC `address`")
	fs.StringVar(&f.exchange, "exchange", "fanout", "log exchange: fanout (logs), direct (direct_logs) or topic (topic_logs)")
}

func (f *logFlags) logExchange() (warrenv1.LogExchange, error) {
	switch f.exchange {
	case "fanout":
		return warrenv1.LogExchange_LOG_EXCHANGE_FANOUT, nil
	case "direct":
		return warrenv1.LogExchange_LOG_EXCHANGE_DIRECT, nil
	case "topic":
		return warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, nil
	}
	return 0, fmt.Errorf("--exchange %q: want fanout, direct or topic", f.exchange)
}

func newLogFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, logUsage) }
	return fs
}

// dialLog connects to the gateway over insecure credentials.
func dialLog(addr string) (warrenv1.LogServiceClient, func(), error) {
	cc, err := dial(addr)
	if err != nil {
		return nil, nil, err
	}
	return warrenv1.NewLogServiceClient(cc), func() { _ = cc.Close() }, nil
}

func logEmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f logFlags
	var key string
	fs := newLogFlagSet("warren log emit", stderr)
	f.register(fs)
	fs.StringVar(&key, "routing-key", "", `routing key (default "info" for direct, "anonymous.info" for topic; ignored by fanout)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ex, err := f.logExchange()
	if err != nil {
		return err
	}
	message := strings.Join(fs.Args(), " ")
	switch ex {
	case warrenv1.LogExchange_LOG_EXCHANGE_FANOUT:
		if message == "" {
			message = "info: Hello World!"
		}
	case warrenv1.LogExchange_LOG_EXCHANGE_DIRECT:
		if key == "" {
			key = "info"
		}
	case warrenv1.LogExchange_LOG_EXCHANGE_TOPIC:
		if key == "" {
			key = "anonymous.info"
		}
	}
	if message == "" {
		message = "Hello World!"
	}
	client, closeConn, err := dialLog(f.addr)
	if err != nil {
		return err
	}
	defer closeConn()
	if _, err := client.EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: ex, RoutingKey: key, Body: message}); err != nil {
		return fmt.Errorf("warren log emit: %w", err)
	}
	if ex == warrenv1.LogExchange_LOG_EXCHANGE_FANOUT {
		fmt.Fprintf(stdout, " [x] Sent %s\n", message)
	} else {
		fmt.Fprintf(stdout, " [x] Sent %s:%s\n", key, message)
	}
	return nil
}

func logTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f logFlags
	fs := newLogFlagSet("warren log tail", stderr)
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ex, err := f.logExchange()
	if err != nil {
		return err
	}
	keys := fs.Args()
	if ex != warrenv1.LogExchange_LOG_EXCHANGE_FANOUT && len(keys) == 0 {
		fs.Usage()
		return fmt.Errorf("warren log tail: the %s exchange needs at least one binding key", f.exchange)
	}
	client, closeConn, err := dialLog(f.addr)
	if err != nil {
		return err
	}
	defer closeConn()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.SubscribeLogs(ctx, &warrenv1.SubscribeLogsRequest{Exchange: ex, BindingKeys: keys})
	if err != nil {
		return tailError(ctx, err)
	}
	// The header comes once the queue is bound.
	if _, err := stream.Header(); err != nil {
		return tailError(ctx, err)
	}
	fmt.Fprintln(stderr, " [*] Waiting for logs. To exit press CTRL+C")
	for {
		m, err := stream.Recv()
		if err != nil {
			return tailError(ctx, err)
		}
		body := m.GetBody()
		if len(m.GetRawBody()) > 0 {
			body = string(m.GetRawBody())
		}
		if _, err := fmt.Fprintf(stdout, "[%s] %s\n", m.GetRoutingKey(), body); err != nil {
			return fmt.Errorf("warren log tail: %w", err)
		}
	}
}

// tailError is nil when the tail ended because ctx did (Ctrl-C).
func tailError(ctx context.Context, err error) error {
	if ctx.Err() != nil && status.Code(err) == codes.Canceled {
		return nil
	}
	if err == io.EOF {
		return errors.New("warren log tail: the gateway ended the stream")
	}
	return fmt.Errorf("warren log tail: %w", err)
}
