package main

import (
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

// logFlags are the logging flags of the server commands (gateway, worker,
// dev): --log-level and --log-format.
type logFlags struct {
	logLevel  slog.Level
	logFormat string
}

func (f *logFlags) register(cmd *cobra.Command) {
	cmd.Flags().Var((*levelValue)(&f.logLevel), "log-level", "log level: debug, info, warn or error")
	enumCompletion(cmd, "log-level", "debug", "info", "warn", "error")
	enumFlag(cmd, &f.logFormat, "log-format", "text", "log format: text (key=value) or json (one object a line)", "text", "json")
}

// logger is the command's logger, on its stderr, in the format and at the
// level the flags ask for. It is also the logger main's signal handling
// logs to (notifySignals).
func (f *logFlags) logger(cmd *cobra.Command) *slog.Logger {
	log := slog.New(f.handler(cmd.ErrOrStderr()))
	logSignalsTo(cmd.Context(), log)
	return log
}

func (f *logFlags) handler(w io.Writer) slog.Handler {
	opts := &slog.HandlerOptions{Level: f.logLevel}
	if f.logFormat == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// accessLogFlag adds --access-log, on by default, to a command that runs
// the gateway.
func accessLogFlag(cmd *cobra.Command, p *bool) {
	cmd.Flags().BoolVar(p, "access-log", true, `log one line per gRPC call (message "call", at info level); --access-log=false turns it off`)
}

// accessLogger is the gateway's access log: log when on is set, nil (no
// access log) when not.
func accessLogger(on bool, log *slog.Logger) *slog.Logger {
	if !on {
		return nil
	}
	return log
}
