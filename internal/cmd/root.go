// Package cmd is the command line of the offerfeed binary. NewRootCommand builds it; each
// subcommand (manager, gateway, render, validate, version) is one file whose constructor returns
// a *cobra.Command, with its flags bound to an options struct and its work in RunE.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/offerfeed/offerfeed/internal/cmd/flagcompat"
)

// Exit codes of every subcommand.
const (
	// ExitOK: the command did what it was asked.
	ExitOK = 0
	// ExitFailed: the command failed, or found what it checks for (an invalid policy).
	ExitFailed = 1
	// ExitUsage: a usage error (unknown command or flag, bad flag value), or input that cannot
	// be read.
	ExitUsage = 2
)

// Main runs the offerfeed command line args (without the program name) on the process's
// standard streams and returns the exit code.
func Main(args []string) int {
	return Execute(context.Background(), args, os.Stdin, os.Stdout, os.Stderr)
}

// Execute runs the offerfeed command line args with ctx and the given streams and returns the
// exit code. Help (-h, --help, help) exits 0; usage errors print the command's usage and exit
// ExitUsage.
func Execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRootCommand()
	root.SetArgs(goStyleArgs(root, args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	c, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// cobra's own errors: an unknown command, flag or argument.
		ee = &exitError{code: ExitUsage, err: err, usage: true}
	}
	if ee.err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", c.CommandPath(), strings.TrimRight(ee.err.Error(), "\n"))
	}
	if ee.usage {
		fmt.Fprintf(stderr, "\n%s", c.UsageString())
	}
	return ee.code
}

// NewRootCommand returns the offerfeed command with its subcommands.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "offerfeed",
		Short: "offerfeed enforces fair rate policies on the offer feeds of delivery marketplaces",
		Long: `offerfeed enforces fair rate policies on the offer feeds of delivery marketplaces.

One binary: the operator (manager), the gateway sidecar it injects (gateway), and the offline
tools of a GitOps pipeline (render, validate).`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		RunE: func(*cobra.Command, []string) error {
			return usageErrorf("no command given")
		},
	}
	root.AddCommand(
		newManagerCommand(),
		newGatewayCommand(),
		newRenderCommand(),
		newValidateCommand(),
		newVersionCommand(),
		newDemoMovedCommand(),
	)
	// An error a subcommand returns is a failure (ExitFailed) unless it carries its own code.
	for _, c := range root.Commands() {
		if run := c.RunE; run != nil {
			c.RunE = func(cmd *cobra.Command, args []string) error {
				err := run(cmd, args)
				if err != nil && !errors.As(err, new(*exitError)) {
					return &exitError{code: ExitFailed, err: err}
				}
				return err
			}
		}
	}
	return root
}

// exitError ends a command with an exit code.
type exitError struct {
	code int
	// err is printed after the command's name; nil prints nothing (the command has reported).
	err error
	// usage prints the command's usage after err.
	usage bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a usage error: the message, then the command's usage, exit ExitUsage.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...), usage: true}
}

// exitWith ends the command with code, printing err unless it is nil.
func exitWith(code int, err error) error {
	return &exitError{code: code, err: err}
}

// noArgs refuses positional arguments, with a hint.
func noArgs(hint string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			if hint != "" {
				return usageErrorf("unexpected argument %q; %s", args[0], hint)
			}
			return usageErrorf("unexpected argument %q", args[0])
		}
		return nil
	}
}

// goStyleArgs spells the single-dash long flags of the subcommand that args name with two
// dashes (see flagcompat), so command lines written for the flag package keep working.
func goStyleArgs(root *cobra.Command, args []string) []string {
	c, _, err := root.Find(args)
	if err != nil || c == root {
		return args
	}
	return flagcompat.GoStyleArgs(c.Flags(), args)
}

// newDemoMovedCommand tells those who run `offerfeed demo` where the demo went.
func newDemoMovedCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "demo",
		Short:  "moved to its own binary, offerfeed-demo",
		Long:   "The demo is its own binary, offerfeed-demo, so that offerfeed carries neither the test control plane\nnor the market simulator. Run `make demo` (DEMOFLAGS=... for its flags), or\ngo run ./cmd/offerfeed-demo [flags].",
		Hidden: true,
		// The demo's old flags are taken, to reach the message.
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
		RunE: func(*cobra.Command, []string) error {
			return exitWith(ExitUsage, errors.New("the demo is its own binary now: run `make demo`, or go run ./cmd/offerfeed-demo [flags]"))
		},
	}
}
