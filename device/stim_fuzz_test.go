package device_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// stimRecorder is the device's end of the fuzz: a test pattern that
// records every stimulation the emulator decoded from the wire and handed
// to it.
type stimRecorder struct {
	*sim.TestPattern
	mu  sync.Mutex
	got []device.Stim
}

func (r *stimRecorder) Stimulate(s device.Stim) error {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
	return nil
}

func (r *stimRecorder) since(n int) []device.Stim {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got[n:])
}

func (r *stimRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// fuzzLimits are the limits of the fuzz: the defaults, with the Shannon
// criterion on and the electrodes restricted, so every kind of refusal is
// reachable.
var fuzzLimits = device.StimLimits{ElectrodeAreaUm2: 1500, Channels: []int{0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 13}, MaxChannelDuty: 0.02, MaxTotalDuty: 0.04, DutyWindowS: 2}

const fuzzChannels = 12

// stimOracle checks, independently of StimGuard, that what reached the
// device keeps within fuzzLimits (with their defaults), including duty
// over time.
type stimOracle struct {
	trains []oracleTrain
}

type oracleTrain struct {
	at, end time.Time
	ch      uint16
	on      float64 // s
}

func (o *stimOracle) violation(s device.Stim, now time.Time) string {
	const tol = 1 + 1e-9
	a := float64(s.AmplitudeUA)
	pulse := float64(s.PhaseUs)
	if s.Biphasic {
		pulse = 2*float64(s.PhaseUs) + float64(s.InterphaseUs)
	}
	train := float64(s.Pulses-1)*float64(s.PeriodUs) + pulse
	q := a * float64(s.PhaseUs) * 1e-6 // µC
	on := float64(s.Pulses) * float64(s.PhaseUs) * 1e-6
	if s.Biphasic {
		on *= 2
	}
	switch {
	case int(s.Channel) >= fuzzChannels || !slices.Contains(fuzzLimits.Channels, int(s.Channel)):
		return fmt.Sprintf("channel %d", s.Channel)
	case s.Pulses < 1 || s.Pulses > device.DefaultMaxPulses:
		return fmt.Sprintf("%d pulses", s.Pulses)
	case s.PhaseUs < 1 || s.PhaseUs > device.DefaultMaxPhaseUs:
		return fmt.Sprintf("phase %d µs", s.PhaseUs)
	case !(a > 0 && a <= device.DefaultMaxAmplitudeUA):
		return fmt.Sprintf("amplitude %g µA", a)
	case q*1000 > device.DefaultMaxChargeNC*tol:
		return fmt.Sprintf("%g nC per phase", q*1000)
	case !s.Biphasic:
		return "monophasic"
	case s.InterphaseUs > device.DefaultMaxInterphaseUs:
		return fmt.Sprintf("interphase %d µs", s.InterphaseUs)
	case s.Pulses > 1 && float64(s.PeriodUs) < pulse:
		return fmt.Sprintf("period %d µs < pulse %g µs", s.PeriodUs, pulse)
	case s.Pulses > 1 && 1e6/float64(s.PeriodUs) > device.DefaultMaxRateHz*tol:
		return fmt.Sprintf("rate %g Hz", 1e6/float64(s.PeriodUs))
	case train > device.DefaultMaxTrainMs*1000*tol:
		return fmt.Sprintf("train %g µs", train)
	case math.Log10(q*q/(fuzzLimits.ElectrodeAreaUm2*1e-8)) > device.MaxShannonK*tol:
		return fmt.Sprintf("Shannon k %g", math.Log10(q*q/(fuzzLimits.ElectrodeAreaUm2*1e-8)))
	}
	window := time.Duration(fuzzLimits.DutyWindowS * float64(time.Second))
	chOn, allOn := on, on
	for _, t := range o.trains {
		if now.Sub(t.at) >= window {
			continue
		}
		allOn += t.on
		if t.ch == s.Channel {
			chOn += t.on
			if now.Before(t.end) {
				return fmt.Sprintf("channel %d still stimulating", s.Channel)
			}
		}
	}
	if chOn > fuzzLimits.MaxChannelDuty*fuzzLimits.DutyWindowS*tol {
		return fmt.Sprintf("channel %d on %g s in the window", s.Channel, chOn)
	}
	if allOn > fuzzLimits.MaxTotalDuty*fuzzLimits.DutyWindowS*tol {
		return fmt.Sprintf("all channels on %g s in the window", allOn)
	}
	o.trains = append(o.trains, oracleTrain{at: now, end: now.Add(time.Duration(train * float64(time.Microsecond))), ch: s.Channel, on: on})
	return ""
}

// fuzzRequest takes one request from the fuzzer's bytes: either raw bytes
// as the JSON arguments, or a binary stimulation block (docs/protocol.md
// layout) written as a JSON request with the documented field names, with
// a twist now and then (a field dropped, repeated, misspelt or mistyped).
// It also returns how far the clock moves before the request.
func fuzzRequest(data *[]byte) (req []byte, advance time.Duration) {
	take := func(n int) []byte {
		b := make([]byte, n)
		k := copy(b, *data)
		*data = (*data)[k:]
		return b
	}
	sel := take(1)[0]
	advance = time.Duration(sel>>3) * 61 * time.Millisecond
	if sel&3 == 0 {
		return take(int(take(1)[0]) % 160), advance
	}
	b := take(28)
	le := binary.LittleEndian
	ch := uint64(le.Uint16(b[0:]))
	pulses := uint64(le.Uint16(b[2:]))
	phase := uint64(le.Uint32(b[4:]))
	inter := uint64(le.Uint32(b[8:]))
	period := uint64(le.Uint32(b[12:]))
	amp := strconv.FormatFloat(float64(math.Float32frombits(le.Uint32(b[16:]))), 'g', -1, 32)
	flags := le.Uint16(b[20:])
	if sel&4 != 0 { // plausible values, near the limits
		ch, pulses, phase, inter = ch%16, 1+pulses%320, phase%520, inter%220
		period = 1000 + period%12000
		amp = strconv.FormatFloat(float64(b[16])*0.45+float64(b[17])/256, 'g', -1, 64)
	}
	vals := []string{strconv.FormatUint(ch, 10), strconv.FormatUint(pulses, 10), strconv.FormatUint(phase, 10),
		strconv.FormatUint(inter, 10), strconv.FormatUint(period, 10), amp,
		strconv.FormatBool(flags&1 != 0), strconv.FormatBool(flags&2 != 0)}
	keys := []string{"channel", "pulses", "phase_us", "interphase_us", "period_us", "amplitude_ua", "biphasic", "cathodic_first"}
	var parts []string
	twist, which := b[22], int(b[23])%len(keys)
	for i, k := range keys {
		v := vals[i]
		if i == which {
			switch twist % 16 {
			case 1:
				continue // dropped
			case 2:
				k = strings.ToUpper(k[:1]) + k[1:]
			case 3:
				v = strconv.Quote(v)
			case 4:
				parts = append(parts, fmt.Sprintf("%q:%s", k, v))
				if v == "true" {
					v = "false"
				} else {
					v = "true"
				}
			case 5:
				v = "1"
			case 6:
				v += ".5"
			case 7:
				v = "-" + v
			case 8:
				v = "1e" + strconv.Itoa(int(b[24]))
			}
		}
		parts = append(parts, fmt.Sprintf("%q:%s", k, v))
	}
	if twist%16 == 9 {
		parts = append(parts, `"ua":1000`)
	}
	if twist%16 == 10 {
		slices.Reverse(parts)
	}
	return []byte("{" + strings.Join(parts, ",") + "}"), advance
}

// askedFor decodes an accepted request leniently (encoding/json, no
// StimGuard code) to compare with what reached the device.
func askedFor(req []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	err := json.Unmarshal(req, &m)
	return m, err
}

// FuzzStimulate sends random stimulation requests (random JSON, and
// random binary stimulation blocks written as requests) through the
// host's guard (StimGuard.Stimulate) to the emulator over TCP, as
// `spikeline run` does, and checks at the device's end that nothing
// outside the limits ever arrives, that a refused request never arrives,
// and that what arrives is what was asked: cathodic first when the request
// said cathodic_first true, anodic first when it said false. Run it long
// with `make fuzz`.
func FuzzStimulate(f *testing.F) {
	valid := []byte(`{"channel":3,"pulses":10,"phase_us":200,"interphase_us":50,"period_us":5000,"amplitude_ua":40,"biphasic":true,"cathodic_first":true}`)
	f.Add(append([]byte{0, byte(len(valid))}, valid...))
	f.Add([]byte{0, 20, '{', '"', 'c', 'h', 'a', 'n', 'n', 'e', 'l', '"', ':', '1', '}'})
	plausible := func(ch, pulses, phase, amp, flags, twist byte, sel byte) []byte {
		b := make([]byte, 29)
		b[0] = sel
		b[1] = ch
		b[3] = pulses
		b[5] = phase
		b[13], b[14] = 0x60, 0x09 // period 1000 + 2400 µs: 294 Hz
		b[17] = amp
		b[21] = flags
		b[23] = twist
		return b
	}
	f.Add(slices.Concat(plausible(3, 9, 200, 80, 3, 0, 5), plausible(3, 9, 200, 80, 2, 0, 0x85), plausible(4, 9, 200, 80, 1, 0, 0x45)))
	f.Add(slices.Concat(plausible(1, 99, 100, 200, 3, 4, 5), plausible(1, 99, 100, 200, 3, 4+7*16, 5)))
	f.Add(plausible(8, 0, 255, 255, 0, 9, 1))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	rec := &stimRecorder{TestPattern: &sim.TestPattern{Channels: fuzzChannels, Rate: 1000}}
	em := sim.NewEmulator(rec, sim.EmulatorConfig{FrameSamples: 16, WaitForStart: true})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- em.ServeTCP(ctx, ln) }()
	src, err := device.OpenSerial(ctx, device.SerialConfig{Path: "tcp://" + ln.Addr().String(), CommandTimeout: 10 * time.Second})
	if err != nil {
		cancel()
		f.Fatal(err)
	}
	f.Cleanup(func() {
		src.Close()
		cancel()
		<-served
	})

	f.Fuzz(func(t *testing.T, data []byte) {
		now := time.Unix(1e9, 0)
		guard, err := device.NewStimGuard(fuzzLimits, fuzzChannels, func() time.Time { return now })
		if err != nil {
			t.Fatal(err)
		}
		var oracle stimOracle
		for i := 0; len(data) > 0 && i < 8; i++ {
			req, adv := fuzzRequest(&data)
			now = now.Add(adv)
			n := rec.count()
			s, _, err := guard.Stimulate(context.Background(), src, req)
			arrived := rec.since(n)
			if err != nil {
				if !errors.Is(err, device.ErrStimRequest) && !errors.Is(err, device.ErrStimRefused) {
					t.Fatalf("request %s: %v (the device refused what the host admitted, or the link failed)", req, err)
				}
				if len(arrived) != 0 {
					t.Fatalf("refused request %s (%v) reached the device as %+v", req, err, arrived)
				}
				continue
			}
			if len(arrived) != 1 {
				t.Fatalf("accepted request %s: the device got %d stimulations", req, len(arrived))
			}
			got := arrived[0]
			if got != s {
				t.Fatalf("request %s admitted as %+v, the device got %+v", req, s, got)
			}
			if why := oracle.violation(got, now); why != "" {
				t.Fatalf("request %s reached the device outside the limits (%s): %+v", req, why, got)
			}
			m, err := askedFor(req)
			if err != nil {
				t.Fatalf("accepted request %s is not JSON: %v", req, err)
			}
			if cf := string(m["cathodic_first"]); (cf == "true") != got.CathodicFirst || (cf != "true" && cf != "false") {
				t.Fatalf("request %s asked cathodic_first %s, the device got CathodicFirst %v", req, cf, got.CathodicFirst)
			}
			if bp := string(m["biphasic"]); (bp == "true") != got.Biphasic {
				t.Fatalf("request %s asked biphasic %s, the device got %v", req, bp, got.Biphasic)
			}
			for k, v := range map[string]uint64{"channel": uint64(got.Channel), "pulses": uint64(got.Pulses), "phase_us": uint64(got.PhaseUs),
				"interphase_us": uint64(got.InterphaseUs), "period_us": uint64(got.PeriodUs)} {
				raw, ok := m[k]
				if !ok && (k == "interphase_us" || k == "period_us") {
					raw = []byte("0")
				}
				if asked, err := strconv.ParseUint(string(raw), 10, 64); err != nil || asked != v {
					t.Fatalf("request %s asked %s %s, the device got %d", req, k, raw, v)
				}
			}
			if asked, err := strconv.ParseFloat(string(m["amplitude_ua"]), 64); err != nil || float32(asked) != got.AmplitudeUA {
				t.Fatalf("request %s asked amplitude_ua %s, the device got %g", req, m["amplitude_ua"], got.AmplitudeUA)
			}
		}
	})
}
