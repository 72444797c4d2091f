package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/warrenrpc/warren/core"
)

const defaultAddr = "127.0.0.1:50051"

// newFlagSet returns a FlagSet that reports errors instead of exiting.
func newFlagSet(name, args string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("warren "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: warren %s [flags] %s\n\nFlags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, turning -h and flag errors into errUsage (the flag
// package has already printed why).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	return nil
}

// amqpFlags are the broker flags of the commands that connect to RabbitMQ.
type amqpFlags struct {
	url       string
	heartbeat time.Duration
	logLevel  string
}

func (f *amqpFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("WARREN_AMQP_URL")
	if def == "" {
		def = core.DefaultURL
	}
	fs.StringVar(&f.url, "amqp-url", def, "broker URL; several, comma-separated, are tried in turn (env WARREN_AMQP_URL)")
	fs.DurationVar(&f.heartbeat, "heartbeat", 10*time.Second, "AMQP heartbeat interval")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

func (f *amqpFlags) config(name string, log *slog.Logger) core.Config {
	var urls []string
	for _, u := range strings.Split(f.url, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return core.Config{URLs: urls, Name: name, Heartbeat: f.heartbeat, Logger: log}
}

func (f *amqpFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})), nil
}
