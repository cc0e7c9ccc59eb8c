package sim_test

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// FuzzEmulatorCommands sends the emulator arbitrary command sequences,
// with garbage bytes between them, and checks that it never panics and
// answers every well-formed command with a reply echoing its Seq and Op.
func FuzzEmulatorCommands(f *testing.F) {
	f.Add([]byte{1, 5, 0, 0, 0, 0, 0, 0, 0, 7})                       // start, ping
	f.Add([]byte{4, 3, 1, 0, 3, 0, 2, 0, 2})                          // set channels 1,3,2; stop
	f.Add([]byte{3, 0x10, 0x27, 0, 0, 6, 3, 0, 10, 0, 7})             // set rate 10000, stimulate, info
	f.Add([]byte{4, 2, 1, 0, 1, 0, 9, 0xA5, 0x5A, 0xC3, 0x3C, 0, 99}) // duplicate channels, garbage, op 99
	f.Add([]byte{3, 0xff, 0xff, 0xff, 0xff, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		pat := &sim.TestPattern{Channels: 4, Rate: 2000}
		em := sim.NewEmulator(pat, sim.EmulatorConfig{FrameSamples: 10, WaitForStart: true})
		host, dev := net.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- em.Serve(ctx, dev) }()
		replies := make(chan device.Reply, 16)
		go func() {
			dec := device.NewDecoder(host)
			for {
				fr, err := dec.Next()
				if err != nil {
					close(replies)
					return
				}
				if fr.Type == device.FrameReply {
					replies <- fr.Reply
				}
			}
		}()
		defer func() {
			cancel()
			host.Close()
			<-served
		}()
		enc := device.NewEncoder(host)
		seq := uint32(0)
		for len(in) > 0 {
			op := device.Op(in[0] % 10)
			in = in[1:]
			take := func(n int) []byte {
				b := make([]byte, n)
				k := copy(b, in)
				in = in[k:]
				return b
			}
			seq++
			c := device.Command{Seq: seq, Op: op}
			switch op {
			case device.OpSetRate:
				c.Rate = binary.LittleEndian.Uint32(take(4))
				if c.Rate == 0 {
					c.Rate = 1
				}
			case device.OpSetChannels:
				n := int(take(1)[0] % 8)
				for range n {
					c.Channels = append(c.Channels, binary.LittleEndian.Uint16(take(2))%6)
				}
			case device.OpPing:
				c.PingTime = binary.LittleEndian.Uint64(take(8))
			case device.OpStimulate:
				b := take(6)
				c.Stim = device.Stim{Channel: uint16(b[0]), Pulses: binary.LittleEndian.Uint16(b[1:]),
					PhaseUs: uint32(b[3]) * 10, PeriodUs: uint32(b[4]) * 1000, AmplitudeUA: float32(b[5])}
			case 9: // garbage on the line
				g := take(int(take(1)[0] % 16))
				host.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := host.Write(g); err != nil {
					t.Fatal(err)
				}
				continue
			}
			host.SetWriteDeadline(time.Now().Add(time.Second))
			if err := enc.WriteCommand(c); err != nil {
				t.Fatalf("writing %v: %v", c.Op, err)
			}
			select {
			case r, ok := <-replies:
				if !ok {
					t.Fatalf("connection ended after %v command", c.Op)
				}
				if r.Seq != c.Seq || r.Op != c.Op {
					t.Fatalf("reply %d/%v to command %d/%v", r.Seq, r.Op, c.Seq, c.Op)
				}
				if r.Status > device.StatusUnsupported || (c.Op == device.OpPing && r.PingTime != c.PingTime) {
					t.Fatalf("reply %+v to %+v", r, c)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no reply to command %d (%v)", c.Seq, c.Op)
			}
		}
	})
}
