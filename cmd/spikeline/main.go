// Command spikeline reads a headstage, sorts spikes on every channel in real
// time, decodes behaviour and publishes everything on NATS.
//
// Usage:
//
//	spikeline <command> [flags]
//
// Run "spikeline help" for the list of commands; "spikeline <command> -h"
// for the flags of one. docs/cli.md documents them all.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// command is one subcommand. Run parses its own flags from args (refusing
// bad ones before anything starts) and runs until done or ctx ends.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// version is the spikeline release, reported by the control service.
const version = "0.1.0"

var commands = map[string]command{}

// register adds a subcommand; each subcommand's file calls it from init.
func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("spikeline: duplicate command " + c.name)
	}
	commands[c.name] = c
}

// errUsage marks an error caused by bad flags or arguments: exit status 2.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "spikeline: real-time spike sorting, decoding and NATS streaming")
	fmt.Fprintln(w, "\nusage: spikeline <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'spikeline <command> -h' for a command's flags.")
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"run"}
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "spikeline: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := c.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "spikeline %s: %v\n", name, err)
		return 2
	case errors.Is(err, context.Canceled):
		return 0
	default:
		fmt.Fprintf(stderr, "spikeline %s: %v\n", name, err)
		return 1
	}
}

// newFlagSet returns a FlagSet for a subcommand that reports errors
// instead of exiting, writing its usage to stderr.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("spikeline "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args with fs; a bad flag becomes an errUsage error and
// positional arguments are refused unless allowArgs.
func parseFlags(fs *flag.FlagSet, args []string, allowArgs bool) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if !allowArgs && fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// usageErrorf returns an errUsage error with a message.
func usageErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}
