package device

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stimulation safety on the host: a Stim is checked against StimLimits
// before it is encoded, so a bad request never reaches a headstage, whatever
// the headstage itself checks.

// ErrStimRefused is wrapped by every refusal of a stimulation by the host
// (outside the limits, channel busy); ErrStimRequest by every malformed
// request. Both come as a *StimError.
var (
	ErrStimRefused = errors.New("refused by the stimulation limits")
	ErrStimRequest = errors.New("malformed stimulation request")
)

// StimError says why a stimulation was refused: the request field (or
// limit) concerned and the reason in words. Err is ErrStimRefused or
// ErrStimRequest.
type StimError struct {
	Field  string // request field ("amplitude_ua") or, for a limit that spans fields, the limit ("max_charge_nc")
	Reason string
	Err    error
}

func (e *StimError) Error() string {
	if e.Field == "" {
		return "device: stimulate: " + e.Reason
	}
	return "device: stimulate: " + e.Field + ": " + e.Reason
}

func (e *StimError) Unwrap() error { return e.Err }

func refuse(field, format string, args ...any) error {
	return &StimError{Field: field, Reason: fmt.Sprintf(format, args...), Err: ErrStimRefused}
}

func malformed(field, format string, args ...any) error {
	return &StimError{Field: field, Reason: fmt.Sprintf(format, args...), Err: ErrStimRequest}
}

// Conservative defaults of StimLimits, for microelectrodes. A limits file
// states what the experiment needs; what it leaves out takes these.
const (
	DefaultMaxAmplitudeUA  = 100.0  // µA per phase
	DefaultMaxPhaseUs      = 500    // µs per phase
	DefaultMaxInterphaseUs = 200    // µs between the two phases
	DefaultMaxChargeNC     = 20.0   // nC per phase (µA × µs / 1000)
	DefaultMaxRateHz       = 300.0  // pulses per second within a train
	DefaultMaxPulses       = 300    // pulses per train
	DefaultMaxTrainMs      = 1000.0 // onset of the first pulse to end of the last
	DefaultDutyWindowS     = 10.0   // window over which duty is measured
	DefaultMaxChannelDuty  = 0.05   // fraction of the window current flows on one electrode
	DefaultMaxTotalDuty    = 0.10   // the same summed over all electrodes
	// MaxShannonK is the largest Shannon k accepted: log10(Q·D) ≤ 1.75
	// with Q the charge per phase in µC and D the charge density in
	// µC/cm² (Shannon 1992, the usual bound for tissue damage).
	MaxShannonK = 1.75
)

// StimLimits bound what the host lets through to a headstage. The zero
// value of a field means its Default (the conservative value above); a
// limits file (TOML or JSON, keys as tagged) states only what it changes.
// ElectrodeAreaUm2 > 0 turns on the Shannon criterion with ShannonK
// (default and maximum 1.75). Channels, when not empty, lists the only
// electrodes that may be stimulated.
type StimLimits struct {
	MaxAmplitudeUA   float64 `toml:"max_amplitude_ua" json:"max_amplitude_ua"`
	MaxPhaseUs       uint32  `toml:"max_phase_us" json:"max_phase_us"`
	MaxInterphaseUs  uint32  `toml:"max_interphase_us" json:"max_interphase_us"`
	MaxChargeNC      float64 `toml:"max_charge_nc" json:"max_charge_nc"`
	AllowMonophasic  bool    `toml:"allow_monophasic" json:"allow_monophasic"`
	MaxRateHz        float64 `toml:"max_rate_hz" json:"max_rate_hz"`
	MaxPulses        int     `toml:"max_pulses" json:"max_pulses"`
	MaxTrainMs       float64 `toml:"max_train_ms" json:"max_train_ms"`
	DutyWindowS      float64 `toml:"duty_window_s" json:"duty_window_s"`
	MaxChannelDuty   float64 `toml:"max_channel_duty" json:"max_channel_duty"`
	MaxTotalDuty     float64 `toml:"max_total_duty" json:"max_total_duty"`
	ElectrodeAreaUm2 float64 `toml:"electrode_area_um2" json:"electrode_area_um2"`
	ShannonK         float64 `toml:"shannon_k" json:"shannon_k"`
	Channels         []int   `toml:"channels" json:"channels"`
}

// WithDefaults returns l with every zero field set to its default.
func (l StimLimits) WithDefaults() StimLimits {
	def := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&l.MaxAmplitudeUA, DefaultMaxAmplitudeUA)
	def(&l.MaxChargeNC, DefaultMaxChargeNC)
	def(&l.MaxRateHz, DefaultMaxRateHz)
	def(&l.MaxTrainMs, DefaultMaxTrainMs)
	def(&l.DutyWindowS, DefaultDutyWindowS)
	def(&l.MaxChannelDuty, DefaultMaxChannelDuty)
	def(&l.MaxTotalDuty, DefaultMaxTotalDuty)
	if l.MaxPhaseUs == 0 {
		l.MaxPhaseUs = DefaultMaxPhaseUs
	}
	if l.MaxInterphaseUs == 0 {
		l.MaxInterphaseUs = DefaultMaxInterphaseUs
	}
	if l.MaxPulses == 0 {
		l.MaxPulses = DefaultMaxPulses
	}
	if l.ElectrodeAreaUm2 > 0 && l.ShannonK == 0 {
		l.ShannonK = MaxShannonK
	}
	l.Channels = slices.Clone(l.Channels)
	return l
}

// Validate reports the first impossible limit, naming its key. It checks
// l as given (call it before WithDefaults to refuse negative values that
// defaults would hide).
func (l StimLimits) Validate() error {
	for _, f := range []struct {
		key string
		v   float64
	}{
		{"max_amplitude_ua", l.MaxAmplitudeUA}, {"max_charge_nc", l.MaxChargeNC}, {"max_rate_hz", l.MaxRateHz},
		{"max_train_ms", l.MaxTrainMs}, {"duty_window_s", l.DutyWindowS}, {"max_channel_duty", l.MaxChannelDuty},
		{"max_total_duty", l.MaxTotalDuty}, {"electrode_area_um2", l.ElectrodeAreaUm2}, {"shannon_k", l.ShannonK},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("device: stimulation limits: %s = %g: want a finite value >= 0 (0: the default)", f.key, f.v)
		}
	}
	if l.MaxPulses < 0 || l.MaxPulses > math.MaxUint16 {
		return fmt.Errorf("device: stimulation limits: max_pulses = %d: want 0 (the default, %d) to %d", l.MaxPulses, DefaultMaxPulses, math.MaxUint16)
	}
	if l.MaxChannelDuty > 1 || l.MaxTotalDuty > 1 {
		return fmt.Errorf("device: stimulation limits: max_channel_duty %g, max_total_duty %g: duties are fractions of time, at most 1", l.MaxChannelDuty, l.MaxTotalDuty)
	}
	if l.ShannonK > MaxShannonK {
		return fmt.Errorf("device: stimulation limits: shannon_k = %g: the Shannon criterion allows at most %g", l.ShannonK, MaxShannonK)
	}
	if l.ShannonK > 0 && l.ElectrodeAreaUm2 == 0 {
		return errors.New("device: stimulation limits: shannon_k needs electrode_area_um2 (the geometric area of one electrode site)")
	}
	for _, c := range l.Channels {
		if c < 0 || c > math.MaxUint16 {
			return fmt.Errorf("device: stimulation limits: channels: %d is not a channel number", c)
		}
	}
	return nil
}

// Loosened lists, in words, the limits of l (as given) that are looser than
// the defaults, for a warning at start.
func (l StimLimits) Loosened() []string {
	var s []string
	add := func(key string, v, def float64) {
		if v > def {
			s = append(s, fmt.Sprintf("%s %g (default %g)", key, v, def))
		}
	}
	add("max_amplitude_ua", l.MaxAmplitudeUA, DefaultMaxAmplitudeUA)
	add("max_phase_us", float64(l.MaxPhaseUs), DefaultMaxPhaseUs)
	add("max_interphase_us", float64(l.MaxInterphaseUs), DefaultMaxInterphaseUs)
	add("max_charge_nc", l.MaxChargeNC, DefaultMaxChargeNC)
	add("max_rate_hz", l.MaxRateHz, DefaultMaxRateHz)
	add("max_pulses", float64(l.MaxPulses), DefaultMaxPulses)
	add("max_train_ms", l.MaxTrainMs, DefaultMaxTrainMs)
	add("max_channel_duty", l.MaxChannelDuty, DefaultMaxChannelDuty)
	add("max_total_duty", l.MaxTotalDuty, DefaultMaxTotalDuty)
	if l.AllowMonophasic {
		s = append(s, "allow_monophasic (default: biphasic charge-balanced pulses only)")
	}
	return s
}

// PulseUs returns the duration of one pulse of s in µs: one phase, or two
// phases and the interphase gap.
func (s Stim) PulseUs() float64 {
	if s.Biphasic {
		return 2*float64(s.PhaseUs) + float64(s.InterphaseUs)
	}
	return float64(s.PhaseUs)
}

// TrainUs returns the duration of the train s in µs, from the onset of the
// first pulse to the end of the last.
func (s Stim) TrainUs() float64 {
	if s.Pulses == 0 {
		return 0
	}
	return float64(s.Pulses-1)*float64(s.PeriodUs) + s.PulseUs()
}

// ChargeNC returns the charge of one phase of s in nC.
func (s Stim) ChargeNC() float64 { return float64(s.AmplitudeUA) * float64(s.PhaseUs) / 1000 }

// OnUs returns the time current flows during the train s, in µs.
func (s Stim) OnUs() float64 {
	n := float64(s.Pulses) * float64(s.PhaseUs)
	if s.Biphasic {
		n *= 2
	}
	return n
}

// Check reports the first limit s breaks, as a *StimError wrapping
// ErrStimRefused, or nil. channels is the device's channel count (0:
// unknown). l must have its defaults (WithDefaults). Duty over time is
// StimGuard's: Check looks at one train alone.
func (l StimLimits) Check(s Stim, channels int) error {
	if channels > 0 && int(s.Channel) >= channels {
		return refuse("channel", "%d: the device has channels 0 to %d", s.Channel, channels-1)
	}
	if len(l.Channels) > 0 && !slices.Contains(l.Channels, int(s.Channel)) {
		return refuse("channel", "%d is not among the channels the limits allow (%v)", s.Channel, l.Channels)
	}
	a := float64(s.AmplitudeUA)
	switch {
	case s.Pulses == 0:
		return refuse("pulses", "0: a train has at least one pulse")
	case int(s.Pulses) > l.MaxPulses:
		return refuse("pulses", "%d above the limit of %d (max_pulses)", s.Pulses, l.MaxPulses)
	case s.PhaseUs == 0:
		return refuse("phase_us", "0 µs")
	case s.PhaseUs > l.MaxPhaseUs:
		return refuse("phase_us", "%d µs above the limit of %d µs (max_phase_us)", s.PhaseUs, l.MaxPhaseUs)
	case math.IsNaN(a) || math.IsInf(a, 0) || a <= 0:
		return refuse("amplitude_ua", "%g µA: want > 0", a)
	case a > l.MaxAmplitudeUA:
		return refuse("amplitude_ua", "%g µA above the limit of %g µA (max_amplitude_ua)", a, l.MaxAmplitudeUA)
	case s.ChargeNC() > l.MaxChargeNC:
		return refuse("max_charge_nc", "%g µA × %d µs = %.4g nC per phase, above the limit of %g nC", a, s.PhaseUs, s.ChargeNC(), l.MaxChargeNC)
	case !s.Biphasic && !l.AllowMonophasic:
		return refuse("biphasic", "false: only charge-balanced biphasic pulses are allowed (allow_monophasic)")
	case !s.Biphasic && s.InterphaseUs != 0:
		return refuse("interphase_us", "%d µs on a monophasic pulse, which has no second phase", s.InterphaseUs)
	case s.InterphaseUs > l.MaxInterphaseUs:
		return refuse("interphase_us", "%d µs above the limit of %d µs (max_interphase_us)", s.InterphaseUs, l.MaxInterphaseUs)
	}
	pulse := s.PulseUs()
	if s.PeriodUs != 0 || s.Pulses > 1 {
		if float64(s.PeriodUs) < pulse {
			return refuse("period_us", "%d µs is shorter than a pulse (%g µs): pulses would overlap", s.PeriodUs, pulse)
		}
	}
	if s.Pulses > 1 {
		if rate := 1e6 / float64(s.PeriodUs); rate > l.MaxRateHz {
			return refuse("period_us", "%d µs is a pulse rate of %.4g Hz, above the limit of %g Hz (max_rate_hz)", s.PeriodUs, rate, l.MaxRateHz)
		}
	}
	if ms := s.TrainUs() / 1000; ms > l.MaxTrainMs {
		return refuse("max_train_ms", "the train lasts %.6g ms, above the limit of %g ms", ms, l.MaxTrainMs)
	}
	if l.ElectrodeAreaUm2 > 0 {
		if k := ShannonK(s, l.ElectrodeAreaUm2); k > l.ShannonK {
			return refuse("shannon_k", "k = %.3f for %.4g nC per phase on %g µm², above %g", k, s.ChargeNC(), l.ElectrodeAreaUm2, l.ShannonK)
		}
	}
	on := s.OnUs() / 1e6
	if on > l.MaxChannelDuty*l.DutyWindowS {
		return refuse("max_channel_duty", "current flows %.4g s in this train, more than %g of %g s", on, l.MaxChannelDuty, l.DutyWindowS)
	}
	if on > l.MaxTotalDuty*l.DutyWindowS {
		return refuse("max_total_duty", "current flows %.4g s in this train, more than %g of %g s", on, l.MaxTotalDuty, l.DutyWindowS)
	}
	return nil
}

// ShannonK returns Shannon's k of one phase of s on an electrode of area
// µm²: log10(Q) + log10(Q/A), Q in µC, A in cm².
func ShannonK(s Stim, areaUm2 float64) float64 {
	q := s.ChargeNC() / 1000 // µC
	return math.Log10(q) + math.Log10(q/(areaUm2*1e-8))
}

// StimGuard admits stimulation trains that keep within StimLimits, also
// over time: per-electrode and total duty over the limits' window, and no
// new train on an electrode whose previous train is still running. It is
// safe for concurrent use.
type StimGuard struct {
	limits   StimLimits
	channels int
	now      func() time.Time

	mu     sync.Mutex
	trains []admitted // admitted trains, oldest first, within the duty window
}

type admitted struct {
	at      time.Time
	channel uint16
	onS     float64 // seconds of current
	endsAt  time.Time
}

// NewStimGuard returns a guard for a device of channels channels (0:
// unknown) under limits l (checked, then completed with defaults). now
// gives the time (nil: time.Now).
func NewStimGuard(l StimLimits, channels int, now func() time.Time) (*StimGuard, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &StimGuard{limits: l.WithDefaults(), channels: channels, now: now}, nil
}

// Limits returns the limits in force (with defaults).
func (g *StimGuard) Limits() StimLimits {
	l := g.limits
	l.Channels = slices.Clone(l.Channels)
	return l
}

// Admit checks s against the limits and the recent trains and, if it
// keeps within them, counts it as delivered from now on. A train counted
// stays counted even if the device then fails it: the host cannot know
// that none of it was delivered.
func (g *StimGuard) Admit(s Stim) error {
	if err := g.limits.Check(s, g.channels); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	window := time.Duration(g.limits.DutyWindowS * float64(time.Second))
	keep := g.trains[:0]
	for _, t := range g.trains {
		if now.Sub(t.at) < window {
			keep = append(keep, t)
		}
	}
	g.trains = keep
	on := s.OnUs() / 1e6
	chOn, allOn := on, on
	for _, t := range g.trains {
		allOn += t.onS
		if t.channel == s.Channel {
			chOn += t.onS
			if now.Before(t.endsAt) {
				return refuse("channel", "%d is still delivering a train (until %s from now)", s.Channel, t.endsAt.Sub(now).Round(time.Microsecond))
			}
		}
	}
	w := g.limits.DutyWindowS
	if chOn > g.limits.MaxChannelDuty*w*(1+1e-12) {
		return refuse("max_channel_duty", "channel %d would carry current %.4g s in %g s (duty %.3g), above %g", s.Channel, chOn, w, chOn/w, g.limits.MaxChannelDuty)
	}
	if allOn > g.limits.MaxTotalDuty*w*(1+1e-12) {
		return refuse("max_total_duty", "the electrodes would carry current %.4g s in %g s (duty %.3g), above %g", allOn, w, allOn/w, g.limits.MaxTotalDuty)
	}
	g.trains = append(g.trains, admitted{at: now, channel: s.Channel, onS: on,
		endsAt: now.Add(time.Duration(s.TrainUs() * float64(time.Microsecond)))})
	return nil
}

// Commander sends a command to a device and returns its reply;
// *SerialSource is one.
type Commander interface {
	Command(ctx context.Context, c Command) (Reply, error)
}

// Stimulate decodes a stimulation request (ParseStim), admits it and sends
// it to dev. The Stim is returned whenever it was decoded, so callers can
// report what was asked.
func (g *StimGuard) Stimulate(ctx context.Context, dev Commander, args []byte) (Stim, Reply, error) {
	s, err := ParseStim(args)
	if err != nil {
		return s, Reply{}, err
	}
	if err := g.Admit(s); err != nil {
		return s, Reply{}, err
	}
	r, err := dev.Command(ctx, Command{Op: OpStimulate, Stim: s})
	return s, r, err
}

// stimFields are the keys of a stimulation request, in docs/protocol.md's
// order. All but interphase_us and period_us are required; period_us is
// required for more than one pulse.
var stimFields = []string{"channel", "pulses", "phase_us", "interphase_us", "period_us", "amplitude_ua", "biphasic", "cathodic_first"}

// MaxStimRequest is the longest stimulation request accepted, in bytes.
const MaxStimRequest = 1024

// ParseStim decodes a stimulation request, a JSON object with the fields
// of the stimulation block in docs/protocol.md:
//
//	{"channel":3, "pulses":10, "phase_us":200, "interphase_us":50, "period_us":5000,
//	 "amplitude_ua":40, "biphasic":true, "cathodic_first":true}
//
// It is strict, because a field silently ignored is a pulse not as asked:
// keys are matched exactly (case included), an unknown or repeated key is
// refused, integers must be integers in range, amplitude_ua a finite
// number, the two flags true or false, and channel, pulses, phase_us,
// amplitude_ua, biphasic and cathodic_first must be present (period_us
// too for more than one pulse). Errors are *StimError wrapping
// ErrStimRequest and name the field.
func ParseStim(data []byte) (Stim, error) {
	var s Stim
	if len(data) > MaxStimRequest {
		return s, malformed("", "request of %d bytes, at most %d", len(data), MaxStimRequest)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return s, malformed("", `want a JSON object {"channel":…, "pulses":…, "phase_us":…, "amplitude_ua":…, "biphasic":…, "cathodic_first":…}`)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return s, malformed("", "bad JSON: %v", err)
		}
		key, _ := tok.(string)
		if !slices.Contains(stimFields, key) {
			return s, malformed(key, "unknown field (fields: %s)", strings.Join(stimFields, ", "))
		}
		if seen[key] {
			return s, malformed(key, "given twice")
		}
		seen[key] = true
		var v any
		if err := dec.Decode(&v); err != nil {
			return s, malformed(key, "bad JSON: %v", err)
		}
		if err := s.setField(key, v); err != nil {
			return s, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return s, malformed("", "bad JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return s, malformed("", "data after the request object")
	}
	for _, k := range []string{"channel", "pulses", "phase_us", "amplitude_ua", "biphasic", "cathodic_first"} {
		if !seen[k] {
			return s, malformed(k, "missing (required)")
		}
	}
	if s.Pulses > 1 && !seen["period_us"] {
		return s, malformed("period_us", "missing (required for more than one pulse)")
	}
	return s, nil
}

func (s *Stim) setField(key string, v any) error {
	integer := func(max uint64) (uint64, error) {
		n, ok := v.(json.Number)
		if !ok {
			return 0, malformed(key, "%s: want an integer", jsonKind(v))
		}
		u, err := strconv.ParseUint(string(n), 10, 64)
		if err != nil || u > max {
			return 0, malformed(key, "%s: want an integer from 0 to %d", n, max)
		}
		return u, nil
	}
	var err error
	var u uint64
	switch key {
	case "channel":
		u, err = integer(math.MaxUint16)
		s.Channel = uint16(u)
	case "pulses":
		u, err = integer(math.MaxUint16)
		s.Pulses = uint16(u)
	case "phase_us":
		u, err = integer(math.MaxUint32)
		s.PhaseUs = uint32(u)
	case "interphase_us":
		u, err = integer(math.MaxUint32)
		s.InterphaseUs = uint32(u)
	case "period_us":
		u, err = integer(math.MaxUint32)
		s.PeriodUs = uint32(u)
	case "amplitude_ua":
		n, ok := v.(json.Number)
		if !ok {
			return malformed(key, "%s: want a number of µA", jsonKind(v))
		}
		f, perr := strconv.ParseFloat(string(n), 64)
		if perr != nil || math.IsInf(float64(float32(f)), 0) {
			return malformed(key, "%s µA: not a representable amplitude", n)
		}
		s.AmplitudeUA = float32(f)
	case "biphasic", "cathodic_first":
		b, ok := v.(bool)
		if !ok {
			return malformed(key, "%s: want true or false", jsonKind(v))
		}
		if key == "biphasic" {
			s.Biphasic = b
		} else {
			s.CathodicFirst = b
		}
	}
	return err
}

func jsonKind(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(v)
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		return string(v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// UnmarshalJSON decodes a stimulation request strictly (ParseStim), so
// that no decoding of a Stim can ignore a field.
func (s *Stim) UnmarshalJSON(data []byte) error {
	v, err := ParseStim(data)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalJSON encodes s with the field names of ParseStim.
func (s Stim) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Channel       uint16  `json:"channel"`
		Pulses        uint16  `json:"pulses"`
		PhaseUs       uint32  `json:"phase_us"`
		InterphaseUs  uint32  `json:"interphase_us"`
		PeriodUs      uint32  `json:"period_us"`
		AmplitudeUA   float32 `json:"amplitude_ua"`
		Biphasic      bool    `json:"biphasic"`
		CathodicFirst bool    `json:"cathodic_first"`
	}{s.Channel, s.Pulses, s.PhaseUs, s.InterphaseUs, s.PeriodUs, s.AmplitudeUA, s.Biphasic, s.CathodicFirst})
}
