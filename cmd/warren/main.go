// Command warren is the gRPC gateway in front of RabbitMQ, its workers, and
// clients for its services. Run "warren help" for the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "warren:", err)
		}
		os.Exit(1)
	}
}

// errUsage reports a usage error that was already printed.
var errUsage = errors.New("usage")

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"dev", "run the gateway and every worker in one process (what make run starts)", devCommand},
		{"gateway", "run the gRPC gateway", gatewayCommand},
		{"worker", "run the workers", workerCommand},
		{"fib", "call FibonacciService.Fibonacci: warren fib N (rpc_client.py)", fibCommand},
		{"send", "send a message to a queue: warren send [--queue hola] MESSAGE (send.py)", sendCommand},
		{"receive", "print a queue's messages: warren receive [--queue hola] (receive.py)", receiveCommand},
		{"task", "submit, watch or count tasks: warren task submit|watch|stats (new_task.py)", taskCommand},
		{"log", "emit logs or tail them: warren log emit|tail (emit_log*.py, receive_logs*.py)", logCommand},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "warren: unknown command %q\n\n", args[0])
	usage(stderr)
	return errUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "warren: a gRPC gateway in front of RabbitMQ\n\nUsage: warren COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun warren COMMAND -h for a command's flags.")
}
