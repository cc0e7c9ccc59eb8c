package device

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const okStim = `{"channel":3,"pulses":10,"phase_us":200,"interphase_us":50,"period_us":5000,"amplitude_ua":40,"biphasic":true,"cathodic_first":true}`

func TestParseStimDocumentedFields(t *testing.T) {
	s, err := ParseStim([]byte(okStim))
	if err != nil {
		t.Fatal(err)
	}
	want := Stim{Channel: 3, Pulses: 10, PhaseUs: 200, InterphaseUs: 50, PeriodUs: 5000, AmplitudeUA: 40, Biphasic: true, CathodicFirst: true}
	if s != want {
		t.Fatalf("ParseStim = %+v, want %+v", s, want)
	}
	// The field that was silently dropped before: cathodic_first false
	// and true both arrive.
	s, err = ParseStim([]byte(strings.Replace(okStim, `"cathodic_first":true`, `"cathodic_first":false`, 1)))
	if err != nil || s.CathodicFirst {
		t.Fatalf("cathodic_first false: %+v, %v", s, err)
	}
	// Round trip through MarshalJSON and the strict UnmarshalJSON.
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var back Stim
	if err := json.Unmarshal(b, &back); err != nil || back != want {
		t.Fatalf("round trip %s: %+v, %v", b, back, err)
	}
	// One pulse needs no period.
	if _, err := ParseStim([]byte(`{"channel":0,"pulses":1,"phase_us":100,"amplitude_ua":10,"biphasic":true,"cathodic_first":true}`)); err != nil {
		t.Fatal(err)
	}
}

func TestParseStimRefuses(t *testing.T) {
	for _, c := range []struct {
		req, field, what string
	}{
		{`{"channel":3,"pulses":10,"phase_us":200,"period_us":5000,"ua":40,"amplitude_ua":40,"biphasic":true,"cathodic_first":true}`, "ua", "unknown field"},
		{`{"channel":3,"pulses":10,"phase_us":200,"period_us":5000,"Amplitude_UA":40,"biphasic":true,"cathodic_first":true}`, "Amplitude_UA", "unknown field"},
		{`{"channel":3,"pulses":10,"phase_us":200,"period_us":5000,"amplitude_ua":40,"biphasic":true,"cathodic_first":true,"cathodic_first":false}`, "cathodic_first", "given twice"},
		{`{"channel":3,"pulses":10,"phase_us":200,"period_us":5000,"amplitude_ua":40,"biphasic":true}`, "cathodic_first", "missing"},
		{`{"channel":3,"pulses":10,"phase_us":200,"amplitude_ua":40,"biphasic":true,"cathodic_first":true}`, "period_us", "missing"},
		{`{"channel":3.5,"pulses":1,"phase_us":200,"amplitude_ua":40,"biphasic":true,"cathodic_first":true}`, "channel", "integer"},
		{`{"channel":-1,"pulses":1,"phase_us":200,"amplitude_ua":40,"biphasic":true,"cathodic_first":true}`, "channel", "integer"},
		{`{"channel":3,"pulses":65536,"phase_us":200,"amplitude_ua":40,"biphasic":true,"cathodic_first":true}`, "pulses", "65535"},
		{`{"channel":3,"pulses":1,"phase_us":"200","amplitude_ua":40,"biphasic":true,"cathodic_first":true}`, "phase_us", "integer"},
		{`{"channel":3,"pulses":1,"phase_us":200,"amplitude_ua":1e39,"biphasic":true,"cathodic_first":true}`, "amplitude_ua", "representable"},
		{`{"channel":3,"pulses":1,"phase_us":200,"amplitude_ua":null,"biphasic":true,"cathodic_first":true}`, "amplitude_ua", "null"},
		{`{"channel":3,"pulses":1,"phase_us":200,"amplitude_ua":40,"biphasic":1,"cathodic_first":true}`, "biphasic", "true or false"},
		{`{"channel":3,"pulses":1,"phase_us":200,"amplitude_ua":40,"biphasic":true,"cathodic_first":"yes"}`, "cathodic_first", "true or false"},
		{`[1,2]`, "", "JSON object"},
		{``, "", "JSON object"},
		{okStim + `{}`, "", "after the request"},
		{okStim + "\x00\x00", "", "after the request"}, // found by FuzzStimulate
		{okStim + " ]", "", "after the request"},
		{`{"channel":3,`, "", "bad JSON"},
		{`{"channel":3,"channel":4}`, "channel", "twice"},
		{`{"channel":3,"pad":"` + strings.Repeat("x", MaxStimRequest) + `"}`, "", "at most"},
	} {
		_, err := ParseStim([]byte(c.req))
		var se *StimError
		if !errors.As(err, &se) || !errors.Is(err, ErrStimRequest) || se.Field != c.field || !strings.Contains(err.Error(), c.what) {
			t.Errorf("ParseStim(%.80s) = %v, want a request error on %q saying %q", c.req, err, c.field, c.what)
		}
	}
}

func TestStimLimitsCheck(t *testing.T) {
	l := StimLimits{Channels: []int{0, 1, 2, 3, 8}}.WithDefaults()
	good := Stim{Channel: 3, Pulses: 10, PhaseUs: 200, InterphaseUs: 50, PeriodUs: 5000, AmplitudeUA: 40, Biphasic: true, CathodicFirst: true}
	if err := l.Check(good, 16); err != nil {
		t.Fatal(err)
	}
	// At the defaults exactly: 100 µA × 200 µs = 20 nC, 300 pulses at 300 Hz.
	edge := Stim{Channel: 0, Pulses: 300, PhaseUs: 200, PeriodUs: 3334, AmplitudeUA: 100, Biphasic: true}
	if err := l.Check(edge, 16); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
	for _, c := range []struct {
		mod   func(*Stim)
		field string
	}{
		{func(s *Stim) { s.Channel = 16 }, "channel"},
		{func(s *Stim) { s.Channel = 5 }, "channel"}, // not in Channels
		{func(s *Stim) { s.Pulses = 0 }, "pulses"},
		{func(s *Stim) { s.Pulses = 301 }, "pulses"},
		{func(s *Stim) { s.PhaseUs = 0 }, "phase_us"},
		{func(s *Stim) { s.PhaseUs = 501 }, "phase_us"},
		{func(s *Stim) { s.AmplitudeUA = 0 }, "amplitude_ua"},
		{func(s *Stim) { s.AmplitudeUA = -5 }, "amplitude_ua"},
		{func(s *Stim) { s.AmplitudeUA = float32(math.NaN()) }, "amplitude_ua"},
		{func(s *Stim) { s.AmplitudeUA = float32(math.Inf(1)) }, "amplitude_ua"},
		{func(s *Stim) { s.AmplitudeUA = 1e38 }, "amplitude_ua"},
		{func(s *Stim) { s.AmplitudeUA = 100.01 }, "amplitude_ua"},
		{func(s *Stim) { s.AmplitudeUA, s.PhaseUs = 100, 201 }, "max_charge_nc"},
		{func(s *Stim) { s.Biphasic, s.InterphaseUs = false, 0 }, "biphasic"},
		{func(s *Stim) { s.InterphaseUs = 201 }, "interphase_us"},
		{func(s *Stim) { s.PeriodUs = 449 }, "period_us"},  // overlapping pulses
		{func(s *Stim) { s.PeriodUs = 3333 }, "period_us"}, // 300.03 Hz
		{func(s *Stim) { s.PeriodUs, s.Pulses = 0, 2 }, "period_us"},
		{func(s *Stim) { s.PeriodUs, s.Pulses = 10000, 101 }, "max_train_ms"}, // 1.00045 s
	} {
		s := good
		c.mod(&s)
		err := l.Check(s, 16)
		var se *StimError
		if !errors.As(err, &se) || !errors.Is(err, ErrStimRefused) || se.Field != c.field {
			t.Errorf("Check(%+v) = %v, want a refusal on %q", s, err, c.field)
		}
	}
	// Monophasic only when allowed, and then without an interphase gap.
	mono := Stim{Channel: 0, Pulses: 1, PhaseUs: 100, AmplitudeUA: 10}
	lm := StimLimits{AllowMonophasic: true}.WithDefaults()
	if err := lm.Check(mono, 0); err != nil {
		t.Fatal(err)
	}
	mono.InterphaseUs = 10
	if err := lm.Check(mono, 0); err == nil {
		t.Fatal("monophasic pulse with an interphase gap accepted")
	}
}

// Shannon's k against a hand calculation: 20 nC = 0.02 µC per phase on
// 2,000 µm² (2e-5 cm²) is 1,000 µC/cm², k = log10(0.02) + 3 = 1.301; on
// 200 µm², k = 2.301.
func TestStimShannon(t *testing.T) {
	s := Stim{Channel: 0, Pulses: 1, PhaseUs: 200, AmplitudeUA: 100, Biphasic: true}
	if k := ShannonK(s, 2000); math.Abs(k-1.30103) > 1e-4 {
		t.Errorf("k on 2000 µm² = %.5f, want 1.30103", k)
	}
	if k := ShannonK(s, 200); math.Abs(k-2.30103) > 1e-4 {
		t.Errorf("k on 200 µm² = %.5f, want 2.30103", k)
	}
	if err := (StimLimits{ElectrodeAreaUm2: 2000}.WithDefaults()).Check(s, 0); err != nil {
		t.Errorf("k 1.30 refused: %v", err)
	}
	err := (StimLimits{ElectrodeAreaUm2: 200}.WithDefaults()).Check(s, 0)
	var se *StimError
	if !errors.As(err, &se) || se.Field != "shannon_k" {
		t.Errorf("k 2.30 on 200 µm²: %v, want a shannon_k refusal", err)
	}
}

func TestStimLimitsValidate(t *testing.T) {
	for _, l := range []StimLimits{
		{MaxAmplitudeUA: -1},
		{MaxChargeNC: math.NaN()},
		{MaxRateHz: math.Inf(1)},
		{MaxPulses: 70000},
		{MaxChannelDuty: 1.5},
		{ShannonK: 2, ElectrodeAreaUm2: 1000},
		{ShannonK: 1.5},
		{Channels: []int{-1}},
	} {
		if l.Validate() == nil {
			t.Errorf("Validate(%+v) accepted", l)
		}
		if _, err := NewStimGuard(l, 0, nil); err == nil {
			t.Errorf("NewStimGuard(%+v) accepted", l)
		}
	}
	if err := (StimLimits{}).Validate(); err != nil {
		t.Fatal(err)
	}
	if got := (StimLimits{MaxAmplitudeUA: 200, AllowMonophasic: true}).Loosened(); len(got) != 2 {
		t.Errorf("Loosened = %q", got)
	}
}

// The guard counts duty over its window and refuses a new train on an
// electrode that is still stimulating.
func TestStimGuardDuty(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	// 100 pulses × 2 × 200 µs = 40 ms of current per train, train 495.45 ms.
	g, err := NewStimGuard(StimLimits{DutyWindowS: 1, MaxChannelDuty: 0.1, MaxTotalDuty: 0.15}, 8, clock)
	if err != nil {
		t.Fatal(err)
	}
	train := Stim{Channel: 1, Pulses: 100, PhaseUs: 200, InterphaseUs: 50, PeriodUs: 5000, AmplitudeUA: 50, Biphasic: true, CathodicFirst: true}
	if err := g.Admit(train); err != nil {
		t.Fatal(err)
	}
	var se *StimError
	if err := g.Admit(train); !errors.As(err, &se) || se.Field != "channel" {
		t.Fatalf("second train during the first: %v, want channel busy", err)
	}
	now = now.Add(500 * time.Millisecond)
	if err := g.Admit(train); err != nil { // 80 ms of 100 on channel 1
		t.Fatal(err)
	}
	now = now.Add(500 * time.Millisecond) // the first train leaves the window
	if err := g.Admit(train); err != nil {
		t.Fatal(err)
	}
	now = now.Add(499 * time.Millisecond)
	if err := g.Admit(train); !errors.As(err, &se) || se.Field != "max_channel_duty" {
		t.Fatalf("a third train in 1 s on channel 1 (120 ms of current): %v, want a channel duty refusal", err)
	}
	now = now.Add(2 * time.Millisecond) // the second train leaves the window
	if err := g.Admit(train); err != nil {
		t.Fatal(err)
	}
	// Channel 2: 80 ms on channel 1 + 40 = 120 ms in total, fine; channel
	// 3 then would make 160 ms, above 150.
	other := train
	other.Channel = 2
	if err := g.Admit(other); err != nil {
		t.Fatalf("channel 2: %v", err)
	}
	other.Channel = 3
	if err := g.Admit(other); !errors.As(err, &se) || se.Field != "max_total_duty" {
		t.Fatalf("channel 3: %v, want a total duty refusal", err)
	}
	// Many short trains: 0.05 of 1 s is 50 ms, 4 ms trains every 50 ms
	// reach it at the 13th.
	g2, _ := NewStimGuard(StimLimits{DutyWindowS: 1, MaxChannelDuty: 0.05, MaxTotalDuty: 1}, 8, clock)
	short := train
	short.Pulses = 10 // 4 ms of current, 45.45 ms long
	var refused error
	for i := 0; i < 30 && refused == nil; i++ {
		refused = g2.Admit(short)
		now = now.Add(50 * time.Millisecond)
	}
	if !errors.As(refused, &se) || se.Field != "max_channel_duty" {
		t.Fatalf("4 ms trains every 50 ms: %v, want a channel duty refusal", refused)
	}
}
