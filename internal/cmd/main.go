// Package cmd holds the subcommands of the offerfeed binary. Each subcommand lives in its own
// file and registers itself in init with register.
package cmd

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand of the offerfeed binary.
type command struct {
	// summary is the one-line description shown by `offerfeed help`.
	summary string
	// run runs the subcommand with the arguments after its name and returns the exit code.
	run func(args []string) int
}

var commands = map[string]command{}

// register adds a subcommand; called from init functions.
func register(name, summary string, run func(args []string) int) {
	if _, dup := commands[name]; dup {
		panic("offerfeed: subcommand registered twice: " + name)
	}
	commands[name] = command{summary: summary, run: run}
}

// Main runs the subcommand named by args[0] and returns the process exit code.
func Main(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(os.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "offerfeed: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return 2
	}
	return c.run(args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "offerfeed enforces fair rate policies on the offer feeds of delivery marketplaces.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: offerfeed <command> [flags]   (offerfeed <command> -h for its flags)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
}
