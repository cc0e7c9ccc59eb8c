package device

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// An Opener opens a device of one kind. arg is what follows "kind:" in
// the device specification (empty when there is no colon). An Opener
// checks its arguments and refuses bad ones with an error naming them
// before anything starts.
type Opener func(ctx context.Context, arg string, o Options) (Source, error)

// Options configure [Open]. The zero value opens a device with its own
// settings, unpaced.
type Options struct {
	// Pace releases the Blocks of files and simulated devices at Pace
	// times real time; 0 reads them as fast as possible. Hardware sets
	// its own pace and ignores it.
	Pace float64

	// Channels and Rate: a raw file without a sidecar is read with
	// Channels, Rate and Gain; a headstage that takes commands is asked
	// for Channels and Rate when they are not 0.
	Channels int
	Rate     float64
	Gain     float64

	// Meta is the recording.json sidecar of a raw file (default: PATH.json
	// or recording.json beside it); SkipLayoutCheck reads a raw file with
	// its channel count even if its samples contradict it.
	Meta            string
	SkipLayoutCheck bool

	// Baud is the line rate of a serial port behind a UART bridge (0: the
	// default; USB CDC ignores it).
	Baud int

	// Config holds settings of one kind of device, of the type its
	// package documents (sim.Config for sim, intan.RHXConfig for rhx,
	// openephys.Config for an Open Ephys recording); kinds that need none
	// ignore it.
	Config any

	// Logger receives what a device reports while it runs (reconnections,
	// a recording cut by a crash); nil discards it.
	Logger *slog.Logger
}

// Log returns o.Logger, or a logger that discards everything.
func (o *Options) Log() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Logf returns a printf-style function logging at info level, as the
// sources' Logf fields take.
func (o *Options) Logf() func(format string, args ...any) {
	log := o.Log()
	return func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }
}

// What an opened Source may do beyond Next; callers check with a type
// assertion. Sources that wrap others (pacing, snapshots) pass these on.
type (
	// StatsReporter reports link statistics since the device was opened.
	// Stats is safe to call while another goroutine calls Next.
	StatsReporter interface {
		Stats() Stats
	}

	// Pinger measures a headstage's command round trip.
	Pinger interface {
		Ping(ctx context.Context) (time.Duration, error)
	}

	// ChannelNamer gives the device's names of its channels (e.g. Intan's
	// A-000), in Block order.
	ChannelNamer interface {
		ChannelNames() []string
	}

	// EventTaker hands over link events not attached to a Block (e.g. the
	// bad frames of a file that ends before its first sample).
	EventTaker interface {
		TakeEvents(dst []Event) []Event
	}
)

// Commander (stim.go) sends commands to a headstage; io.Closer releases
// the device; fmt.Stringer names it for people (default: its
// specification).

var registry struct {
	sync.RWMutex
	kinds   map[string]Opener
	formats []fileFormat
}

// Register makes a device kind available to [Open] as "kind:ARG". The
// packages that implement devices call it from init; it panics if kind
// is registered twice or is not a lower-case word.
func Register(kind string, open Opener) {
	if kind == "" || strings.Trim(kind, "abcdefghijklmnopqrstuvwxyz0123456789") != "" || open == nil {
		panic(fmt.Sprintf("device: Register(%q): want a lower-case kind and an Opener", kind))
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.kinds == nil {
		registry.kinds = map[string]Opener{}
	}
	if _, dup := registry.kinds[kind]; dup {
		panic("device: Register: kind " + kind + " registered twice")
	}
	registry.kinds[kind] = open
}

// Kinds returns the registered device kinds, sorted.
func Kinds() []string {
	registry.RLock()
	defer registry.RUnlock()
	k := make([]string, 0, len(registry.kinds))
	for n := range registry.kinds {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// SplitSpec splits a device specification "kind:arg" ("sim", "file:PATH",
// "tcp:HOST:PORT") at its first colon.
func SplitSpec(spec string) (kind, arg string) {
	kind, arg, _ = strings.Cut(spec, ":")
	return kind, arg
}

// Open opens the device spec names ("kind:arg") with the Opener its kind
// registered. Close the Source when done if it is an io.Closer.
func Open(ctx context.Context, spec string, o Options) (Source, error) {
	kind, arg := SplitSpec(spec)
	registry.RLock()
	open := registry.kinds[kind]
	registry.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("device %q: unknown device kind %q (registered: %s)", spec, kind, strings.Join(Kinds(), ", "))
	}
	return open(ctx, arg, o)
}

// A fileFormat is a kind of recording the file: kind recognises.
type fileFormat struct {
	name  string
	match func(path string, o Options) bool
	open  Opener
}

// RegisterFormat makes a recording format readable as "file:PATH": the
// file: kind opens PATH with the first registered format whose match
// accepts it with the Options given (in registration order), then as a wire-protocol capture
// (recognised by its sync word), then as a raw int16 recording.
func RegisterFormat(name string, match func(path string, o Options) bool, open Opener) {
	registry.Lock()
	defer registry.Unlock()
	for _, f := range registry.formats {
		if f.name == name {
			panic("device: RegisterFormat: format " + name + " registered twice")
		}
	}
	registry.formats = append(registry.formats, fileFormat{name, match, open})
}

// Name returns what to call src in messages: its String method's answer,
// or spec.
func Name(src Source, spec string) string {
	if s, ok := src.(fmt.Stringer); ok {
		return s.String()
	}
	return spec
}

// Close closes src if it is an io.Closer.
func Close(src Source) error {
	if c, ok := src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
