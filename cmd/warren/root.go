package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// run runs the command line args as main does, writing to stdout and
// stderr: it is warren's in-process entry point, which the tests call. It
// prints an error itself, as "warren: COMMAND: what went wrong", and
// returns it; exitCode(err) is the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runEnv(ctx, args, os.LookupEnv, stdout, stderr)
}

// runEnv is run with the environment read through lookup.
func runEnv(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr, lookup)
	root.SetArgs(append([]string{}, args...)) // never nil: cobra would read os.Args
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return nil
	}
	if path := commandPath(cmd); path != "" {
		err = fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(stderr, "warren: %v\n", err)
	if exitCode(err) == 2 && cmd != nil {
		if cmd.Name() == "help" {
			cmd = root // whose commands it did not find
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return err
}

// commandPath is cmd's path without "warren": "log tail".
func commandPath(cmd *cobra.Command) string {
	if cmd == nil || !cmd.HasParent() {
		return ""
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// newRoot builds the command tree, which writes to stdout and stderr and
// reads the flags' defaults from the environment through lookup.
func newRoot(stdout, stderr io.Writer, lookup func(string) (string, bool)) *cobra.Command {
	root := &cobra.Command{
		Use:   "warren",
		Short: "warren: a gRPC gateway in front of RabbitMQ",
		Long: `warren is a gRPC gateway in front of RabbitMQ: the six RabbitMQ tutorials as
typed gRPC services. "warren dev" runs the gateway and every worker in one
process; the other commands run them apart or call the gateway's services.`,
		Version:       version(),
		Args:          cobra.ArbitraryArgs,
		RunE:          unknownCommand,
		SilenceErrors: true,
		SilenceUsage:  true,

		SuggestionsMinimumDistance: 2,
	}
	root.SetOut(stdout) // before the completion command, which keeps it
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetUsageTemplate(usageTemplate)
	root.SetFlagErrorFunc(flagError)
	root.SetHelpCommand(newHelpCmd())
	root.AddCommand(
		newDevCmd(), newGatewayCmd(), newWorkerCmd(),
		newFibCmd(), newSendCmd(), newReceiveCmd(), newTaskCmd(), newLogCmd(),
		newVersionCmd(),
	)
	root.InitDefaultCompletionCmd()
	envErrs := bindEnv(root, lookup)
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return envErrs[cmd] }
	return root
}

// newGroup returns a command whose subcommands do the work (task, log).
func newGroup(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use: use, Short: short,
		Args: cobra.ArbitraryArgs, RunE: unknownCommand,
		SuggestionsMinimumDistance: 2,
	}
	c.AddCommand(subs...)
	return c
}

// newHelpCmd is "warren help [COMMAND...]": the command's help on stdout,
// or a usage error for a command that does not exist.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND...]",
		Short: "Print the help of warren or of a command",
		Args:  cobra.ArbitraryArgs,
		ValidArgsFunction: func(c *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, _ := c.Root().Find(args)
			var names []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil {
				return &usageError{err}
			}
			if len(rest) > 0 {
				return usagef("unknown help topic %q%s", strings.Join(args, " "), didYouMean(cmd.SuggestionsFor(rest[0])))
			}
			cmd.InitDefaultHelpFlag()
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
	}
}

// usageTemplate is cobra's, less what warren does not use (aliases,
// groups, inherited flags), plus the line about the environment.
var usageTemplate = `Usage:{{if and .Runnable (not .HasAvailableSubCommands)}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} COMMAND{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run "{{.CommandPath}} COMMAND --help" for more about a command.{{end}}{{if index .Annotations "` + envAnnotation + `"}}

` + envHelp() + `{{end}}
`
