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
	"runtime/pprof"
	"slices"
	"sync/atomic"
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
		return exitOK
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "spikeline: unknown command %q\n\n", name)
		usage(stderr)
		return exitUsage
	}
	// SIGINT or SIGTERM stops the command cleanly (the pipeline stops the
	// source, flushes the sorter, drains NATS and closes its files); a
	// second one exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer func() { signal.Stop(sigs); close(sigs) }()
	var got atomic.Value
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		got.Store(s)
		cancel()
		if _, ok := <-sigs; ok {
			fmt.Fprintf(stderr, "spikeline %s: second %v: exiting without a clean shutdown\n", name, s)
			os.Exit(exitCodeSignal(s))
		}
	}()
	err := c.run(ctx, args[1:], stdout, stderr)
	if s, ok := got.Load().(os.Signal); ok && (err == nil || errors.Is(err, context.Canceled)) {
		return exitCodeSignal(s) // stopped by a signal, cleanly
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "spikeline %s: %v\n", name, err)
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitOK
	default:
		fmt.Fprintf(stderr, "spikeline %s: %v\n", name, err)
		return exitFailed
	}
}

// Exit codes. A command stopped by SIGINT or SIGTERM after a clean
// shutdown exits with 128 + the signal number, as a shell reports it.
const (
	exitOK     = 0 // finished: --duration reached, the recording ended, or nothing to do
	exitFailed = 1 // failed: the device, a file, NATS or the pipeline reported an error
	exitUsage  = 2 // a bad flag or configuration; nothing was started
)

func exitCodeSignal(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return exitFailed
}

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

// startCPUProfile starts a Go CPU profile into path (--cpuprofile; ""
// does nothing) and returns what stops it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
