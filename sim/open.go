package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

// The simulator as a device kind of the registry (device.Open):
//
//	sim      the simulator in process, paced by Options.Pace
//	sim:pty  the simulator behind a pseudo-terminal, read through the
//	         serial path as a headstage
//	sim:tcp  the simulator behind a loopback TCP port, read through the
//	         network path
//
// Options.Config is the simulator's Config (a zero Config: the defaults);
// Options.Pace its speed (0: as fast as possible).
func init() {
	device.Register("sim", Open)
}

// Open opens the simulator as device.Open does for "sim:via" (via "",
// "pty" or "tcp"). The Source it returns also has TakeBehaviour, the true
// behaviour behind the spikes.
func Open(ctx context.Context, via string, o device.Options) (device.Source, error) {
	var cfg Config
	switch c := o.Config.(type) {
	case nil:
	case Config:
		cfg = c
	case *Config:
		cfg = *c
	default:
		return nil, device.SpecErrorf("device sim: Options.Config is a %T, want a sim.Config", o.Config)
	}
	switch via {
	case "", "pty", "tcp":
	default:
		return nil, device.SpecErrorf("device sim:%s: want sim, sim:pty or sim:tcp", via)
	}
	sm, err := New(cfg)
	if err != nil {
		return nil, device.SpecErrorf("simulator: %v", err)
	}
	name := fmt.Sprintf("sim(seed %d)", cfg.Seed)
	if via == "" {
		return &Device{Source: device.Paced(sm, o.Pace), sim: sm, name: name}, nil
	}
	// The simulator as a headstage: an emulator serves it on a pty or a
	// loopback port and the host reads it like hardware.
	em := NewEmulator(sm, EmulatorConfig{Speed: max(o.Pace, 0), Unpaced: o.Pace == 0, Seed: uint64(cfg.Seed)})
	ectx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	where := make(chan string, 1)
	if via == "pty" {
		go func() {
			served <- em.ServePTY(ectx, "", func(tty string) {
				select {
				case where <- tty:
				default:
				}
			})
		}()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stop()
			return nil, err
		}
		where <- "tcp://" + ln.Addr().String()
		go func() { served <- em.ServeTCP(ectx, ln) }()
	}
	var path string
	select {
	case path = <-where:
	case err := <-served:
		stop()
		return nil, fmt.Errorf("simulated headstage on %s: %w", via, err)
	case <-time.After(10 * time.Second):
		stop()
		return nil, fmt.Errorf("simulated headstage on %s did not start", via)
	}
	// The simulator's channels and rate are its Config's: no commands.
	hs, err := device.OpenHeadstage(ctx, device.SerialConfig{Path: path},
		fmt.Sprintf("%s via %s %s", name, via, strings.TrimPrefix(path, "tcp://")), device.Options{Logger: o.Logger})
	if err != nil {
		stop()
		return nil, err
	}
	return &Headstage{Headstage: hs, dev: Device{sim: sm}, stop: stop, served: served}, nil
}

// Device is the simulator opened in process ("sim").
type Device struct {
	device.Source
	sim     *Sim
	name    string
	scratch []sort.Spike
}

// Sim returns the simulator.
func (d *Device) Sim() *Sim { return d.sim }

func (d *Device) String() string { return d.name }

// TakeBehaviour calls add with each behaviour sample (vx, vy) generated
// since the last call, in time order; it also drops the ground-truth
// spikes generated so far (a live pipeline does not use them; take them
// from Sim first where wanted). Safe to call while Next runs.
func (d *Device) TakeBehaviour(add func(sample uint64, values []float64)) {
	d.scratch = d.sim.TakeSpikes(d.scratch[:0])
	var v [2]float64
	for _, b := range d.sim.TakeBehaviour(nil) {
		v[0], v[1] = b.VX, b.VY
		add(b.Sample, v[:])
	}
}

// Headstage is the simulator served by an emulator on a pty or a
// loopback TCP port and read back as a headstage ("sim:pty", "sim:tcp"):
// it takes commands and reports link statistics as hardware does.
type Headstage struct {
	*device.Headstage
	dev    Device
	stop   context.CancelFunc
	served chan error
}

// Sim returns the simulator behind the emulator.
func (h *Headstage) Sim() *Sim { return h.dev.sim }

// TakeBehaviour is Device.TakeBehaviour.
func (h *Headstage) TakeBehaviour(add func(sample uint64, values []float64)) {
	h.dev.TakeBehaviour(add)
}

// Close closes the port, then stops the emulator.
func (h *Headstage) Close() error {
	err := h.Headstage.Close()
	h.stop()
	if serr := <-h.served; serr != nil && !errors.Is(serr, context.Canceled) && err == nil {
		err = serr
	}
	return err
}
