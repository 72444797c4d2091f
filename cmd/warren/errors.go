package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/status"
)

// A usageError is a command line warren cannot run: a wrong flag, a
// missing argument, an unknown command. It exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitCode is the exit status for err: 0 for nil, 2 for a usage error, 1
// for any other failure.
func exitCode(err error) int {
	var u *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		return 2
	}
	return 1
}

// rpcError is a failed call to the gateway. It reads "Code: message",
// never grpc-go's "rpc error: code = … desc = …".
type rpcError struct{ s *status.Status }

func (e *rpcError) Error() string              { return fmt.Sprintf("%v: %s", e.s.Code(), e.s.Message()) }
func (e *rpcError) GRPCStatus() *status.Status { return e.s }

// callError turns an error of a gRPC call into an rpcError.
func callError(err error) error {
	if s, ok := status.FromError(err); ok {
		return &rpcError{s}
	}
	return err
}

// exactArgs accepts exactly len(names) arguments, named in the error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("want %d argument%s (%s), got %d", len(names), plural(len(names)), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// noArgs accepts no argument.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// unknownCommand is the RunE of warren and of the command groups (task,
// log): they run only when no subcommand matched.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		var names []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		return usagef("missing command: %s", oneOf(names))
	}
	return usagef("unknown command %q%s", args[0], didYouMean(cmd.SuggestionsFor(args[0])))
}

func didYouMean(suggestions []string) string {
	if len(suggestions) == 0 {
		return ""
	}
	return fmt.Sprintf("; did you mean %s?", oneOf(suggestions))
}

// flagError makes a flag parsing error a usage error, with the closest
// flag when the one given does not exist.
func flagError(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if errors.As(err, &ne) {
		typed := ne.GetSpecifiedName()
		if s := ne.GetSpecifiedShortnames(); len(s) > 1 {
			typed, _, _ = strings.Cut(s, "=") // -addr, as the flag package spelt --addr
		}
		if name := closestFlag(cmd.Flags(), typed); name != "" {
			return usagef("%v; did you mean --%s?", err, name)
		}
	}
	return &usageError{err}
}

// closestFlag is the flag of fs whose name is typed, or starts with it, or
// is the nearest to it within 2 edits; "" if none is.
func closestFlag(fs *pflag.FlagSet, typed string) string {
	best, bestDist := "", 3
	for _, name := range flagNames(fs) {
		d := levenshtein(typed, name)
		if len(typed) > 1 && strings.HasPrefix(name, typed) {
			d = min(d, 1)
		}
		if d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

// levenshtein is the edit distance between a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
