// Command warren is the gRPC gateway in front of RabbitMQ, its workers, and
// clients for its services. Run "warren help" for the commands.
//
// main only wires the signals (signals.go) and the exit status; run
// (root.go) builds the command tree (github.com/spf13/cobra) and runs it.
package main

import (
	"context"
	"os"
)

func main() {
	ctx, stop := notifySignals(context.Background(), os.Stderr, os.Exit)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}
