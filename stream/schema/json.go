package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// JSON forms of the messages, published on the ".json" twin subjects. Each
// document carries "v" (the schema Version) and the Header fields "type",
// "sample", "rate" and "pub_ns". docs/schemas.md lists every field.

type jsonHead struct {
	V int `json:"v"`
	Header
}

func head(h Header, t Type) jsonHead {
	h.Type = t
	return jsonHead{V: Version, Header: h}
}

func checkHead(h jsonHead, want Type) error {
	if h.V != Version {
		return fmt.Errorf("schema: JSON %s: version %d, this reader knows %d", want, h.V, Version)
	}
	if h.Type != want {
		return fmt.Errorf("schema: JSON message: type %q, want %q", h.Type, want)
	}
	return nil
}

type jsonSpike struct {
	Sample    uint64  `json:"sample"`
	Channel   int32   `json:"channel"`
	Unit      int32   `json:"unit"`
	Amplitude float32 `json:"amp_uv"`
}

type jsonSpikes struct {
	jsonHead
	End    uint64      `json:"end"`
	Spikes []jsonSpike `json:"spikes"`
}

// MarshalJSON encodes m as its JSON document.
func (m *SpikeBatch) MarshalJSON() ([]byte, error) {
	j := jsonSpikes{jsonHead: head(m.Header, TypeSpikes), End: m.End, Spikes: make([]jsonSpike, len(m.Spikes))}
	for i, s := range m.Spikes {
		j.Spikes[i] = jsonSpike(s)
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes m's JSON document.
func (m *SpikeBatch) UnmarshalJSON(b []byte) error {
	var j jsonSpikes
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("schema: JSON spikes: %w", err)
	}
	if err := checkHead(j.jsonHead, TypeSpikes); err != nil {
		return err
	}
	m.Header, m.End = j.Header, j.End
	m.Spikes = make([]Spike, len(j.Spikes))
	for i, s := range j.Spikes {
		m.Spikes[i] = Spike(s)
	}
	return nil
}

type jsonEstimate struct {
	jsonHead
	Model    string    `json:"model"`
	Names    []string  `json:"names"`
	Values   []float64 `json:"values"`
	Degraded bool      `json:"degraded,omitempty"`
}

// MarshalJSON encodes m as its JSON document.
func (m *EstimateMsg) MarshalJSON() ([]byte, error) {
	names := m.Names
	if names == nil {
		names = []string{}
	}
	vals := m.Values
	if vals == nil {
		vals = []float64{}
	}
	return json.Marshal(jsonEstimate{head(m.Header, TypeEstimate), m.Model, names, vals, m.Degraded()})
}

// UnmarshalJSON decodes m's JSON document.
func (m *EstimateMsg) UnmarshalJSON(b []byte) error {
	var j jsonEstimate
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("schema: JSON estimate: %w", err)
	}
	if err := checkHead(j.jsonHead, TypeEstimate); err != nil {
		return err
	}
	if len(j.Names) != len(j.Values) {
		return fmt.Errorf("schema: JSON estimate: %d names for %d values", len(j.Names), len(j.Values))
	}
	m.Header, m.Model, m.Names, m.Values = j.Header, j.Model, j.Names, j.Values
	if j.Degraded {
		m.Flags |= FlagDegraded
	} else {
		m.Flags &^= FlagDegraded
	}
	return nil
}

type jsonStatus struct {
	jsonHead
	Link           LinkStats `json:"link"`
	UptimeNS       int64     `json:"uptime_ns"`
	SampleRate     float64   `json:"sample_rate"`
	SpikeRate      float64   `json:"spike_rate"`
	LatencyP50NS   int64     `json:"latency_p50_ns"`
	LatencyP99NS   int64     `json:"latency_p99_ns"`
	LatencyMaxNS   int64     `json:"latency_max_ns"`
	PipelineDrops  uint64    `json:"pipeline_drops"`
	Sent           uint64    `json:"sent"`
	PublishDropped uint64    `json:"publish_dropped"`
	PublishErrors  uint64    `json:"publish_errors"`
	Reconnects     uint64    `json:"nats_reconnects"`
	Threshold      float64   `json:"threshold"`
	NoiseUV        []float32 `json:"noise_uv"`
	RateHz         []float32 `json:"rate_hz"`
}

// MarshalJSON encodes m as its JSON document.
func (m *Status) MarshalJSON() ([]byte, error) {
	j := jsonStatus{
		jsonHead: head(m.Header, TypeStatus), Link: m.Link,
		UptimeNS: int64(m.Uptime), SampleRate: m.SampleRate, SpikeRate: m.SpikeRate,
		LatencyP50NS: int64(m.LatencyP50), LatencyP99NS: int64(m.LatencyP99), LatencyMaxNS: int64(m.LatencyMax),
		PipelineDrops: m.PipelineDrops, Sent: m.Sent, PublishDropped: m.PublishDropped,
		PublishErrors: m.PublishErrors, Reconnects: m.Reconnects, Threshold: m.Threshold,
		NoiseUV: m.NoiseUV, RateHz: m.RateHz,
	}
	if j.NoiseUV == nil {
		j.NoiseUV = []float32{}
	}
	if j.RateHz == nil {
		j.RateHz = []float32{}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes m's JSON document.
func (m *Status) UnmarshalJSON(b []byte) error {
	var j jsonStatus
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("schema: JSON status: %w", err)
	}
	if err := checkHead(j.jsonHead, TypeStatus); err != nil {
		return err
	}
	*m = Status{
		Header: j.Header, Link: j.Link,
		Uptime: time.Duration(j.UptimeNS), SampleRate: j.SampleRate, SpikeRate: j.SpikeRate,
		LatencyP50: time.Duration(j.LatencyP50NS), LatencyP99: time.Duration(j.LatencyP99NS), LatencyMax: time.Duration(j.LatencyMaxNS),
		PipelineDrops: j.PipelineDrops, Sent: j.Sent, PublishDropped: j.PublishDropped,
		PublishErrors: j.PublishErrors, Reconnects: j.Reconnects, Threshold: j.Threshold,
		NoiseUV: j.NoiseUV, RateHz: j.RateHz,
	}
	return nil
}

type jsonEvents struct {
	jsonHead
	Events []Event `json:"events"`
}

// MarshalJSON encodes m as its JSON document.
func (m *EventBatch) MarshalJSON() ([]byte, error) {
	ev := m.Events
	if ev == nil {
		ev = []Event{}
	}
	return json.Marshal(jsonEvents{head(m.Header, TypeEvents), ev})
}

// UnmarshalJSON decodes m's JSON document.
func (m *EventBatch) UnmarshalJSON(b []byte) error {
	var j jsonEvents
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("schema: JSON events: %w", err)
	}
	if err := checkHead(j.jsonHead, TypeEvents); err != nil {
		return err
	}
	m.Header, m.Events = j.Header, j.Events
	return nil
}

type jsonTemplate struct {
	Unit     int32     `json:"unit"`
	Channel  int32     `json:"channel"`
	Pre      int       `json:"pre"`
	PeakUV   float32   `json:"peak_uv"`
	Count    int       `json:"count"`
	Waveform []float32 `json:"waveform_uv"`
}

type jsonTemplates struct {
	jsonHead
	Full        bool           `json:"full"`
	Templates   []jsonTemplate `json:"templates"`
	QualityFrom *uint64        `json:"quality_from,omitempty"`
	Quality     []jsonQuality  `json:"quality,omitempty"`
}

// jsonQuality is one unit's quality record. The metrics are f32 in the
// binary form; an undefined one (NaN) is null.
type jsonQuality struct {
	Unit               int32  `json:"unit"`
	NumSpikes          int    `json:"num_spikes"`
	FiringRate         metric `json:"firing_rate"`
	PresenceRatio      metric `json:"presence_ratio"`
	SNR                metric `json:"snr"`
	ISIViolationsRatio metric `json:"isi_violations_ratio"`
	ISIViolationsCount int    `json:"isi_violations_count"`
	RPContamination    metric `json:"rp_contamination"`
	RPViolations       int    `json:"rp_violations"`
	AmplitudeCutoff    metric `json:"amplitude_cutoff"`
	AmplitudeMedian    metric `json:"amplitude_median"`
	Label              Label  `json:"label"`
}

// metric is a quality metric in JSON: float32 precision, NaN as null.
type metric float64

func (v metric) MarshalJSON() ([]byte, error) {
	f := float32(v)
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(f), 'g', -1, 32), nil
}

func (v *metric) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*v = metric(math.NaN())
		return nil
	}
	var f float32
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*v = metric(f)
	return nil
}

// MarshalJSON encodes m as its JSON document.
func (m *TemplateBatch) MarshalJSON() ([]byte, error) {
	j := jsonTemplates{jsonHead: head(m.Header, TypeTemplates), Full: m.Full(), Templates: make([]jsonTemplate, len(m.Templates))}
	for i, t := range m.Templates {
		w := t.Waveform
		if w == nil {
			w = []float32{}
		}
		j.Templates[i] = jsonTemplate{t.Unit, t.Channel, t.Pre, t.PeakUV, t.Count, w}
	}
	if m.Quality != nil {
		if len(m.Quality) != len(m.Templates) {
			return nil, fmt.Errorf("schema: %d quality records for %d templates", len(m.Quality), len(m.Templates))
		}
		from := m.QualityFrom
		j.QualityFrom = &from
		j.Quality = make([]jsonQuality, len(m.Quality))
		for i, q := range m.Quality {
			j.Quality[i] = jsonQuality{q.ID, q.NumSpikes, metric(q.FiringRate), metric(q.PresenceRatio), metric(q.SNR),
				metric(q.ISIViolationsRatio), q.ISIViolationsCount, metric(q.RPContamination), q.RPViolations,
				metric(q.AmplitudeCutoff), metric(q.AmplitudeMedian), q.Label}
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes m's JSON document.
func (m *TemplateBatch) UnmarshalJSON(b []byte) error {
	var j jsonTemplates
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("schema: JSON templates: %w", err)
	}
	if err := checkHead(j.jsonHead, TypeTemplates); err != nil {
		return err
	}
	m.Header = j.Header
	if j.Full {
		m.Flags |= FlagFullSnapshot
	} else {
		m.Flags &^= FlagFullSnapshot
	}
	m.Templates = make([]Template, len(j.Templates))
	for i, t := range j.Templates {
		if t.Pre < 0 || (len(t.Waveform) > 0 && t.Pre >= len(t.Waveform)) {
			return fmt.Errorf("schema: JSON templates: template %d (unit %d): pre %d outside waveform of %d samples", i, t.Unit, t.Pre, len(t.Waveform))
		}
		m.Templates[i] = Template{Unit: t.Unit, Channel: t.Channel, Pre: t.Pre, Waveform: t.Waveform, PeakUV: t.PeakUV, Count: t.Count}
	}
	m.Quality, m.QualityFrom = nil, 0
	if j.Quality != nil {
		if len(j.Quality) != len(m.Templates) {
			return fmt.Errorf("schema: JSON templates: %d quality records for %d templates", len(j.Quality), len(m.Templates))
		}
		if j.QualityFrom != nil {
			m.QualityFrom = *j.QualityFrom
		}
		m.Quality = make([]Unit, len(j.Quality))
		for i, q := range j.Quality {
			if q.Unit != m.Templates[i].Unit {
				return fmt.Errorf("schema: JSON templates: quality record %d is unit %d, template %d is unit %d", i, q.Unit, i, m.Templates[i].Unit)
			}
			m.Quality[i] = Unit{ID: q.Unit, Channel: m.Templates[i].Channel, Label: q.Label, Metrics: Metrics{
				NumSpikes: q.NumSpikes, FiringRate: float64(q.FiringRate), PresenceRatio: float64(q.PresenceRatio), SNR: float64(q.SNR),
				ISIViolationsRatio: float64(q.ISIViolationsRatio), ISIViolationsCount: q.ISIViolationsCount,
				RPContamination: float64(q.RPContamination), RPViolations: q.RPViolations,
				AmplitudeCutoff: float64(q.AmplitudeCutoff), AmplitudeMedian: float64(q.AmplitudeMedian)}}
		}
	}
	return nil
}

type jsonRaw struct {
	jsonHead
	Filtered     bool    `json:"filtered"`
	Channels     int     `json:"channels"`
	FirstChannel int     `json:"first_channel"`
	Gain         float64 `json:"gain_uv_per_bit"`
	Samples      []int16 `json:"samples"`
}

// MarshalJSON encodes m as its JSON document.
func (m *RawBlock) MarshalJSON() ([]byte, error) {
	s := m.Samples
	if s == nil {
		s = []int16{}
	}
	return json.Marshal(jsonRaw{head(m.Header, TypeRaw), m.Filtered(), m.Channels, m.FirstChannel, m.Gain, s})
}

// UnmarshalJSON decodes m's JSON document.
func (m *RawBlock) UnmarshalJSON(b []byte) error {
	var j jsonRaw
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("schema: JSON raw: %w", err)
	}
	if err := checkHead(j.jsonHead, TypeRaw); err != nil {
		return err
	}
	if j.Channels <= 0 || len(j.Samples)%j.Channels != 0 {
		return fmt.Errorf("schema: JSON raw: %d samples do not fill %d channels", len(j.Samples), j.Channels)
	}
	m.Header, m.Channels, m.FirstChannel, m.Gain, m.Samples = j.Header, j.Channels, j.FirstChannel, j.Gain, j.Samples
	if j.Filtered {
		m.Flags |= FlagFiltered
	} else {
		m.Flags &^= FlagFiltered
	}
	return nil
}

// DecodeJSON decodes any JSON spikeline message, choosing the type by its
// "type" field.
func DecodeJSON(data []byte) (Message, error) {
	var h struct {
		Type Type `json:"type"`
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("schema: JSON message: %w", err)
	}
	m := newMessage(h.Type)
	if m == nil {
		return nil, fmt.Errorf("schema: JSON message: missing type")
	}
	if err := m.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeSubject decodes a message received on subject, as JSON when the
// subject ends in JSONSuffix and as binary otherwise.
func DecodeSubject(subject string, data []byte) (Message, error) {
	if IsJSON(subject) {
		return DecodeJSON(data)
	}
	return Decode(data)
}
