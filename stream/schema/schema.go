package schema

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Binary message layout. Every binary message starts with a HeaderSize
// header; see docs/schemas.md for the byte tables.
const (
	Magic      = "SPKL" // bytes 0-3 of every binary message
	Version    = 1      // schema version written and read by this package
	HeaderSize = 32     // bytes of the common header

	// SpikeRecordSize is the size of one spike record written by this
	// version. Readers use the record size stored in the message, so
	// later versions may append fields to a record.
	SpikeRecordSize = 20

	spikesFixed    = HeaderSize + 16
	estimateFixed  = HeaderSize + 4
	statusFixed    = HeaderSize + 200
	eventsFixed    = HeaderSize + 8
	eventFixed     = 40
	templatesFixed = HeaderSize + 8
	templateFixed  = 24
	qualityFixed   = 16 // count, record_size, reserved, from

	// QualityRecordSize is the size of one unit-quality record of a
	// templates message written by this version. Readers use the record
	// size stored in the message, so later versions may append fields.
	QualityRecordSize = 48
	rawFixed          = HeaderSize + 24
)

// Offset of the publish time in the header; the publisher stamps it just
// before handing a message to NATS.
const publishedOffset = 24

// StampPublished writes the publish time ns (Unix nanoseconds) into the
// header of an encoded binary message, as a publisher does just before
// sending it.
func StampPublished(msg []byte, ns int64) { le.PutUint64(msg[publishedOffset:], uint64(ns)) }

// Type is a message type, byte 5 of the header.
type Type uint8

// Message types.
const (
	TypeSpikes    Type = 1
	TypeEstimate  Type = 2
	TypeStatus    Type = 3
	TypeEvents    Type = 4
	TypeTemplates Type = 5
	TypeRaw       Type = 6
)

var typeNames = [...]string{TypeSpikes: "spikes", TypeEstimate: "estimate", TypeStatus: "status",
	TypeEvents: "events", TypeTemplates: "templates", TypeRaw: "raw"}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// MarshalText encodes t by name ("spikes").
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText decodes a type name.
func (t *Type) UnmarshalText(b []byte) error {
	for i, n := range typeNames {
		if n != "" && n == string(b) {
			*t = Type(i)
			return nil
		}
	}
	return fmt.Errorf("schema: unknown message type %q", b)
}

// Header flags (bytes 6-7).
const (
	FlagFullSnapshot uint16 = 1 << 0 // templates: the message lists every current template
	FlagFiltered     uint16 = 1 << 0 // raw: samples are band-passed, not raw
	FlagDegraded     uint16 = 1 << 0 // estimate: the bin (or one in the decoder's lag window) overlapped a gap in the data
)

// Sentinel errors wrapped by DecodeError.
var (
	ErrMagic   = errors.New("bad magic (not a spikeline message)")
	ErrVersion = errors.New("unsupported schema version")
	ErrType    = errors.New("unexpected message type")
	ErrShort   = errors.New("message truncated")
	ErrValue   = errors.New("impossible value")
)

// DecodeError says where a binary message went wrong.
type DecodeError struct {
	Type   Type   // message type from the header, 0 if unknown
	Offset int    // byte offset of the offending field
	Field  string // name of the field
	Err    error  // one of the sentinels above
	Detail string
}

func (e *DecodeError) Error() string {
	what := "message"
	if e.Type != 0 {
		what = e.Type.String()
	}
	s := fmt.Sprintf("schema: decode %s: byte %d (%s): %v", what, e.Offset, e.Field, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Header is the part common to every message. Sample is the device sample
// index the message refers to (see each message type); Rate the device
// sample rate in Hz; Published the host time, in Unix nanoseconds, at
// which the publisher handed the message to NATS (for latency only: align
// streams by Sample, never by host time).
type Header struct {
	Type      Type    `json:"type"`
	Flags     uint16  `json:"flags,omitempty"`
	Sample    uint64  `json:"sample"`
	Rate      float64 `json:"rate"`
	Published int64   `json:"pub_ns"`
}

// Head returns h; every message type embeds a Header, so this makes each of
// them a Message.
func (h *Header) Head() *Header { return h }

// PublishTime returns Published as a time.Time.
func (h *Header) PublishTime() time.Time { return time.Unix(0, h.Published) }

// Message is any decoded spikeline message: *SpikeBatch, *EstimateMsg,
// *Status, *EventBatch, *TemplateBatch or *RawBlock.
type Message interface {
	Head() *Header
}

var le = binary.LittleEndian

// putHeader writes a header into b[:HeaderSize].
func putHeader(b []byte, t Type, flags uint16, sample uint64, rate float64, published int64) {
	_ = b[HeaderSize-1]
	copy(b, Magic)
	b[4], b[5] = Version, byte(t)
	le.PutUint16(b[6:], flags)
	le.PutUint64(b[8:], sample)
	le.PutUint64(b[16:], math.Float64bits(rate))
	le.PutUint64(b[24:], uint64(published))
}

func appendHeader(dst []byte, t Type, flags uint16, sample uint64, rate float64, published int64) []byte {
	dst = append(dst, Magic...)
	dst = append(dst, Version, byte(t))
	dst = le.AppendUint16(dst, flags)
	dst = le.AppendUint64(dst, sample)
	dst = le.AppendUint64(dst, math.Float64bits(rate))
	dst = le.AppendUint64(dst, uint64(published))
	return dst
}

// PeekType returns the type of a binary message after checking its magic
// and version.
func PeekType(data []byte) (Type, error) {
	if len(data) < HeaderSize {
		return 0, &DecodeError{Offset: len(data), Field: "header", Err: ErrShort,
			Detail: fmt.Sprintf("%d bytes, header needs %d", len(data), HeaderSize)}
	}
	if string(data[:4]) != Magic {
		return 0, &DecodeError{Offset: 0, Field: "magic", Err: ErrMagic, Detail: fmt.Sprintf("% x", data[:4])}
	}
	t := Type(data[5])
	if data[4] != Version {
		return t, &DecodeError{Type: t, Offset: 4, Field: "version", Err: ErrVersion,
			Detail: fmt.Sprintf("%d, this reader knows %d", data[4], Version)}
	}
	return t, nil
}

func decodeHeader(data []byte, want Type, h *Header) error {
	t, err := PeekType(data)
	if err != nil {
		return err
	}
	if t != want {
		return &DecodeError{Type: t, Offset: 5, Field: "type", Err: ErrType, Detail: fmt.Sprintf("got %s, want %s", t, want)}
	}
	h.Type = t
	h.Flags = le.Uint16(data[6:])
	h.Sample = le.Uint64(data[8:])
	h.Rate = math.Float64frombits(le.Uint64(data[16:]))
	h.Published = int64(le.Uint64(data[24:]))
	return nil
}

// reader walks a message body with bounds checks.
type reader struct {
	t    Type
	data []byte
	off  int
	err  error
}

func (r *reader) need(n int, field string) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.data)-r.off < n {
		r.err = &DecodeError{Type: r.t, Offset: r.off, Field: field, Err: ErrShort,
			Detail: fmt.Sprintf("need %d bytes, %d left", n, len(r.data)-r.off)}
		return false
	}
	return true
}

func (r *reader) fail(field string, off int, format string, a ...any) {
	if r.err == nil {
		r.err = &DecodeError{Type: r.t, Offset: off, Field: field, Err: ErrValue, Detail: fmt.Sprintf(format, a...)}
	}
}

func (r *reader) u8(field string) uint8 {
	if !r.need(1, field) {
		return 0
	}
	v := r.data[r.off]
	r.off++
	return v
}

func (r *reader) u16(field string) uint16 {
	if !r.need(2, field) {
		return 0
	}
	v := le.Uint16(r.data[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32(field string) uint32 {
	if !r.need(4, field) {
		return 0
	}
	v := le.Uint32(r.data[r.off:])
	r.off += 4
	return v
}

func (r *reader) u64(field string) uint64 {
	if !r.need(8, field) {
		return 0
	}
	v := le.Uint64(r.data[r.off:])
	r.off += 8
	return v
}

func (r *reader) f32(field string) float32 { return math.Float32frombits(r.u32(field)) }
func (r *reader) f64(field string) float64 { return math.Float64frombits(r.u64(field)) }

func (r *reader) bytes(n int, field string) []byte {
	if !r.need(n, field) {
		return nil
	}
	v := r.data[r.off : r.off+n]
	r.off += n
	return v
}

// count reads a uint32 element count and checks that count elements of at
// least minSize bytes each fit in what is left.
func (r *reader) count(field string, minSize int) int {
	at := r.off
	n := r.u32(field)
	if r.err != nil {
		return 0
	}
	if minSize > 0 && uint64(n)*uint64(minSize) > uint64(len(r.data)-r.off) {
		r.err = &DecodeError{Type: r.t, Offset: at, Field: field, Err: ErrShort,
			Detail: fmt.Sprintf("%d elements of %d bytes need %d, %d left", n, minSize, uint64(n)*uint64(minSize), len(r.data)-r.off)}
		return 0
	}
	return int(n)
}

// ---------------------------------------------------------------- spikes

// SpikeBatch is the spikes sorted from one block: every spike with
// First <= Sample < End. An empty batch is still meaningful: no spikes in
// [First, End). Header.Sample is First.
type SpikeBatch struct {
	Header
	End    uint64
	Spikes []Spike
}

// First returns the first sample index covered by the batch.
func (m *SpikeBatch) First() uint64 { return m.Sample }

// AppendBinary appends the binary encoding of m to dst. It does not
// allocate when dst has room.
func (m *SpikeBatch) AppendBinary(dst []byte) ([]byte, error) {
	return AppendSpikes(dst, m.Sample, m.End, m.Rate, m.Published, m.Spikes), nil
}

// AppendSpikes appends a binary spikes message for the block [first, end)
// to dst, without allocating when dst has room. published may be 0 (the
// Publisher stamps it).
func AppendSpikes(dst []byte, first, end uint64, rate float64, published int64, spikes []Spike) []byte {
	need := spikesFixed + SpikeRecordSize*len(spikes)
	dst = slices.Grow(dst, need)
	off := len(dst)
	dst = dst[:off+need]
	putHeader(dst[off:], TypeSpikes, 0, first, rate, published)
	b := dst[off+HeaderSize : off+need]
	le.PutUint64(b, end)
	le.PutUint32(b[8:], uint32(len(spikes)))
	le.PutUint16(b[12:], SpikeRecordSize)
	le.PutUint16(b[14:], 0)
	p := b[16:]
	for i := range spikes {
		s := &spikes[i]
		q := p[i*SpikeRecordSize : (i+1)*SpikeRecordSize]
		le.PutUint64(q, s.Sample)
		le.PutUint32(q[8:], uint32(s.Channel))
		le.PutUint32(q[12:], uint32(s.Unit))
		le.PutUint32(q[16:], math.Float32bits(s.Amplitude))
	}
	return dst
}

// MarshalBinary returns the binary encoding of m.
func (m *SpikeBatch) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, spikesFixed+SpikeRecordSize*len(m.Spikes)))
}

// UnmarshalBinary decodes a binary spikes message into m, reusing
// m.Spikes' storage.
func (m *SpikeBatch) UnmarshalBinary(data []byte) error {
	if err := decodeHeader(data, TypeSpikes, &m.Header); err != nil {
		return err
	}
	r := reader{t: TypeSpikes, data: data, off: HeaderSize}
	m.End = r.u64("end")
	nAt := r.off
	n := r.u32("count")
	recAt := r.off
	rec := int(r.u16("record_size"))
	r.u16("reserved")
	if r.err != nil {
		return r.err
	}
	if rec < SpikeRecordSize {
		r.fail("record_size", recAt, "%d, want >= %d", rec, SpikeRecordSize)
		return r.err
	}
	if uint64(n)*uint64(rec) > uint64(len(data)-r.off) {
		return &DecodeError{Type: TypeSpikes, Offset: nAt, Field: "count", Err: ErrShort,
			Detail: fmt.Sprintf("%d spikes of %d bytes need %d, %d left", n, rec, uint64(n)*uint64(rec), len(data)-r.off)}
	}
	if m.End < m.Sample {
		r.fail("end", HeaderSize, "end %d before first %d", m.End, m.Sample)
		return r.err
	}
	m.Spikes = m.Spikes[:0]
	m.Spikes = growSpikes(m.Spikes, int(n))
	p := data[r.off:]
	for i := range m.Spikes {
		q := p[i*rec:]
		m.Spikes[i] = Spike{
			Sample:    le.Uint64(q),
			Channel:   int32(le.Uint32(q[8:])),
			Unit:      int32(le.Uint32(q[12:])),
			Amplitude: math.Float32frombits(le.Uint32(q[16:])),
		}
	}
	return nil
}

func growSpikes(s []Spike, n int) []Spike {
	if s == nil || cap(s) < n {
		return make([]Spike, n)
	}
	return s[:n]
}

// ---------------------------------------------------------------- estimate

// EstimateMsg is one decoder output. Header.Sample is the bin's End (one
// past its last sample).
type EstimateMsg struct {
	Header
	Model  string
	Names  []string
	Values []float64
}

// AppendBinary appends the binary encoding of m to dst.
func (m *EstimateMsg) AppendBinary(dst []byte) ([]byte, error) {
	if len(m.Values) > math.MaxUint16 {
		return dst, fmt.Errorf("schema: estimate has %d values, at most %d", len(m.Values), math.MaxUint16)
	}
	if len(m.Names) != 0 && len(m.Names) != len(m.Values) {
		return dst, fmt.Errorf("schema: estimate has %d names for %d values", len(m.Names), len(m.Values))
	}
	if len(m.Model) > 255 {
		return dst, fmt.Errorf("schema: model name is %d bytes, at most 255", len(m.Model))
	}
	for _, n := range m.Names {
		if len(n) > 255 {
			return dst, fmt.Errorf("schema: output name %q is %d bytes, at most 255", n, len(n))
		}
	}
	dst = appendHeader(dst, TypeEstimate, m.Flags, m.Sample, m.Rate, m.Published)
	dst = le.AppendUint16(dst, uint16(len(m.Values)))
	dst = append(dst, byte(len(m.Model)), 0)
	for _, v := range m.Values {
		dst = le.AppendUint64(dst, math.Float64bits(v))
	}
	dst = append(dst, m.Model...)
	for i := range m.Values {
		name := ""
		if i < len(m.Names) {
			name = m.Names[i]
		}
		dst = append(dst, byte(len(name)))
		dst = append(dst, name...)
	}
	return dst, nil
}

// MarshalBinary returns the binary encoding of m.
func (m *EstimateMsg) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes a binary estimate message into m.
func (m *EstimateMsg) UnmarshalBinary(data []byte) error {
	if err := decodeHeader(data, TypeEstimate, &m.Header); err != nil {
		return err
	}
	r := reader{t: TypeEstimate, data: data, off: HeaderSize}
	n := int(r.u16("count"))
	ml := int(r.u8("model_len"))
	r.u8("reserved")
	if !r.need(8*n, "values") {
		return r.err
	}
	m.Values = make([]float64, n)
	for i := range m.Values {
		m.Values[i] = r.f64("values")
	}
	m.Model = string(r.bytes(ml, "model"))
	m.Names = make([]string, n)
	for i := range m.Names {
		l := int(r.u8("name_len"))
		m.Names[i] = string(r.bytes(l, "name"))
	}
	return r.err
}

// ---------------------------------------------------------------- status

// Status is the periodic health report of a rig (spikeline.<rig>.status).
// Header.Sample is the last device sample processed. The pipeline fills
// the link, throughput, latency and per-channel fields; the Publisher
// fills the Publish* fields when it sends the status.
type Status struct {
	Header
	Link LinkStats // link counters since start

	Uptime         time.Duration // since the pipeline started
	SampleRate     float64       // measured throughput: samples per channel per second (device clock rate when keeping up)
	SpikeRate      float64       // spikes per second, all channels
	LatencyP50     time.Duration // block received -> spikes handed to the publisher
	LatencyP99     time.Duration
	LatencyMax     time.Duration
	PipelineDrops  uint64  // blocks a pipeline stage dropped because it could not keep up
	Sent           uint64  // messages handed to NATS
	PublishDropped uint64  // messages dropped because the publish queue was full
	PublishErrors  uint64  // messages NATS refused (reconnect buffer full, connection closed)
	Reconnects     uint64  // NATS reconnects
	Threshold      float64 // detection threshold in noise SDs (0 if unknown)

	NoiseUV []float32 // per channel: robust noise SD in µV
	RateHz  []float32 // per channel: detected spikes per second
}

// AppendBinary appends the binary encoding of m to dst.
func (m *Status) AppendBinary(dst []byte) ([]byte, error) {
	if len(m.NoiseUV) != len(m.RateHz) && len(m.NoiseUV) != 0 && len(m.RateHz) != 0 {
		return dst, fmt.Errorf("schema: status has %d noise and %d rate channels", len(m.NoiseUV), len(m.RateHz))
	}
	n := max(len(m.NoiseUV), len(m.RateHz))
	dst = appendHeader(dst, TypeStatus, m.Flags, m.Sample, m.Rate, m.Published)
	link := m.Link
	for _, p := range link.Counters() {
		dst = le.AppendUint64(dst, *p)
	}
	dst = le.AppendUint64(dst, uint64(m.Uptime))
	dst = le.AppendUint64(dst, math.Float64bits(m.SampleRate))
	dst = le.AppendUint64(dst, math.Float64bits(m.SpikeRate))
	dst = le.AppendUint64(dst, uint64(m.LatencyP50))
	dst = le.AppendUint64(dst, uint64(m.LatencyP99))
	dst = le.AppendUint64(dst, uint64(m.LatencyMax))
	dst = le.AppendUint64(dst, m.PipelineDrops)
	dst = le.AppendUint64(dst, m.Sent)
	dst = le.AppendUint64(dst, m.PublishDropped)
	dst = le.AppendUint64(dst, m.PublishErrors)
	dst = le.AppendUint64(dst, m.Reconnects)
	dst = le.AppendUint64(dst, math.Float64bits(m.Threshold))
	dst = le.AppendUint32(dst, uint32(n))
	dst = le.AppendUint32(dst, 0)
	for i := range n {
		var v float32
		if i < len(m.NoiseUV) {
			v = m.NoiseUV[i]
		}
		dst = le.AppendUint32(dst, math.Float32bits(v))
	}
	for i := range n {
		var v float32
		if i < len(m.RateHz) {
			v = m.RateHz[i]
		}
		dst = le.AppendUint32(dst, math.Float32bits(v))
	}
	return dst, nil
}

// MarshalBinary returns the binary encoding of m.
func (m *Status) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes a binary status message into m.
func (m *Status) UnmarshalBinary(data []byte) error {
	if err := decodeHeader(data, TypeStatus, &m.Header); err != nil {
		return err
	}
	r := reader{t: TypeStatus, data: data, off: HeaderSize}
	for i, p := range m.Link.Counters() {
		*p = r.u64(LinkCounters[i])
	}
	m.Uptime = time.Duration(r.u64("uptime_ns"))
	m.SampleRate = r.f64("sample_rate")
	m.SpikeRate = r.f64("spike_rate")
	m.LatencyP50 = time.Duration(r.u64("latency_p50_ns"))
	m.LatencyP99 = time.Duration(r.u64("latency_p99_ns"))
	m.LatencyMax = time.Duration(r.u64("latency_max_ns"))
	m.PipelineDrops = r.u64("pipeline_drops")
	m.Sent = r.u64("sent")
	m.PublishDropped = r.u64("publish_dropped")
	m.PublishErrors = r.u64("publish_errors")
	m.Reconnects = r.u64("nats_reconnects")
	m.Threshold = r.f64("threshold")
	n := r.count("channels", 8)
	r.u32("reserved")
	if r.err != nil {
		return r.err
	}
	m.NoiseUV = make([]float32, n)
	m.RateHz = make([]float32, n)
	for i := range n {
		m.NoiseUV[i] = r.f32("noise_uv")
	}
	for i := range n {
		m.RateHz[i] = r.f32("rate_hz")
	}
	return r.err
}

// ---------------------------------------------------------------- events

// EventKind names a kind of event. Kinds 1-63 are link anomalies, raised
// by the device layer (device.EventKind has the same numbers); 64 and up
// are raised by the sorter, the decoder and the control plane.
type EventKind uint8

// Link event kinds.
const (
	EventCRC        EventKind = iota + 1 // a frame failed its CRC-32C check
	EventResync                          // bytes skipped while searching for the next sync word
	EventGap                             // samples lost: Count samples missing before Sample
	EventReset                           // the sample counter went backwards (device reset)
	EventFormat                          // channel count or sample rate changed
	EventDisconnect                      // the port went away
	EventReconnect                       // the port came back
	EventBadFrame                        // a frame with a valid CRC but an impossible header
)

// Sorter, decoder and control event kinds.
const (
	EventTemplateAdded   EventKind = 64 // a new unit's template was learned
	EventTemplateChanged EventKind = 65 // a unit's template drifted and was updated
	EventTemplateRemoved EventKind = 66 // a unit was retired
	EventThreshold       EventKind = 67 // the detection threshold changed
	EventRefit           EventKind = 68 // a decoder was refitted
	EventOverload        EventKind = 69 // a stage fell behind and dropped data
	// Control-plane audit: Detail is a ControlRecord as JSON, versioned by
	// its "v" field. Readers that predate these kinds show them as
	// event(70) etc.; the binary layout is unchanged.
	EventControl        EventKind = 70 // a control call was carried out (threshold, refit, device command)
	EventControlRefused EventKind = 71 // a control call was refused by the control service
	EventAccessRefused  EventKind = 72 // the NATS server refused a client: credentials, or a publish or subscription its role does not allow
	// EventSegment: the session went on in a new segment (a format
	// change, a counter reset or a long gap): Count is the segment number,
	// Detail the reason; after a format change the sorter restarted.
	EventSegment EventKind = 73
	// EventSortLost: the sorted spikes of a channel group are missing
	// for a run of samples (remote sorting: a shard died, stalled or
	// missed its deadline, or raw blocks did not reach it): Sample is the
	// first sample after the run, Count its samples, Channel the group's
	// first channel and Value its number of channels; Detail says which
	// group and why.
	EventSortLost EventKind = 74
	// EventShard: remote sorting changed hands: a shard joined, left or
	// was lost, a group moved to another shard (Channel: the group's first
	// channel, Value its channels; -1 and 0 for a shard's own events).
	EventShard EventKind = 75
)

var eventNames = map[EventKind]string{
	EventCRC:             "crc",
	EventResync:          "resync",
	EventGap:             "gap",
	EventReset:           "reset",
	EventFormat:          "format",
	EventDisconnect:      "disconnect",
	EventReconnect:       "reconnect",
	EventBadFrame:        "bad_frame",
	EventTemplateAdded:   "template_added",
	EventTemplateChanged: "template_changed",
	EventTemplateRemoved: "template_removed",
	EventThreshold:       "threshold",
	EventRefit:           "refit",
	EventOverload:        "overload",
	EventControl:         "control",
	EventControlRefused:  "control_refused",
	EventAccessRefused:   "access_refused",
	EventSegment:         "segment",
	EventSortLost:        "sort_lost",
	EventShard:           "shard",
}

func (k EventKind) String() string {
	if n, ok := eventNames[k]; ok {
		return n
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// MarshalText encodes k by name.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a kind name, or "event(N)".
func (k *EventKind) UnmarshalText(b []byte) error {
	for i := 1; i < 256; i++ {
		if EventKind(i).String() == string(b) {
			*k = EventKind(i)
			return nil
		}
	}
	return fmt.Errorf("schema: unknown event kind %q", b)
}

// Event is one event: a link anomaly (device.Event) or a sorter or
// decoder change. Unit and Channel are set for template events (-1
// otherwise); Value carries a number such as the new threshold.
type Event struct {
	Kind    EventKind `json:"kind"`
	Sample  uint64    `json:"sample"`
	Count   uint64    `json:"count,omitempty"`
	Offset  int64     `json:"offset,omitempty"`
	Unit    int32     `json:"unit"`
	Channel int32     `json:"channel"`
	Value   float64   `json:"value,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

func (e Event) String() string {
	s := fmt.Sprintf("%s at sample %d", e.Kind, e.Sample)
	if e.Count != 0 {
		s += fmt.Sprintf(" count %d", e.Count)
	}
	if e.Unit >= 0 {
		s += fmt.Sprintf(" unit %d", e.Unit)
	}
	if e.Channel >= 0 {
		s += fmt.Sprintf(" ch %d", e.Channel)
	}
	if e.Value != 0 {
		s += fmt.Sprintf(" value %g", e.Value)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// EventBatch is a batch of events in stream order. Header.Sample is the
// sample index at which the batch was published (the last sample seen).
type EventBatch struct {
	Header
	Events []Event
}

// AppendBinary appends the binary encoding of m to dst.
func (m *EventBatch) AppendBinary(dst []byte) ([]byte, error) {
	dst = appendHeader(dst, TypeEvents, m.Flags, m.Sample, m.Rate, m.Published)
	dst = le.AppendUint32(dst, uint32(len(m.Events)))
	dst = le.AppendUint32(dst, 0)
	for i := range m.Events {
		e := &m.Events[i]
		d := e.Detail
		if len(d) > math.MaxUint16 {
			d = d[:math.MaxUint16]
		}
		dst = append(dst, byte(e.Kind), 0)
		dst = le.AppendUint16(dst, uint16(len(d)))
		dst = le.AppendUint32(dst, uint32(e.Channel))
		dst = le.AppendUint64(dst, e.Sample)
		dst = le.AppendUint64(dst, e.Count)
		dst = le.AppendUint64(dst, uint64(e.Offset))
		dst = le.AppendUint32(dst, uint32(e.Unit))
		dst = le.AppendUint32(dst, math.Float32bits(float32(e.Value)))
		dst = append(dst, d...)
	}
	return dst, nil
}

// MarshalBinary returns the binary encoding of m.
func (m *EventBatch) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes a binary events message into m.
func (m *EventBatch) UnmarshalBinary(data []byte) error {
	if err := decodeHeader(data, TypeEvents, &m.Header); err != nil {
		return err
	}
	r := reader{t: TypeEvents, data: data, off: HeaderSize}
	n := r.count("count", eventFixed)
	r.u32("reserved")
	if r.err != nil {
		return r.err
	}
	m.Events = make([]Event, n)
	for i := range m.Events {
		e := &m.Events[i]
		e.Kind = EventKind(r.u8("kind"))
		r.u8("reserved")
		dl := int(r.u16("detail_len"))
		e.Channel = int32(r.u32("channel"))
		e.Sample = r.u64("sample")
		e.Count = r.u64("count")
		e.Offset = int64(r.u64("offset"))
		e.Unit = int32(r.u32("unit"))
		e.Value = float64(r.f32("value"))
		e.Detail = string(r.bytes(dl, "detail"))
	}
	return r.err
}

// ---------------------------------------------------------------- templates

// TemplateBatch carries unit templates. With FlagFullSnapshot set it lists
// every current template (units absent are gone); otherwise only new or
// changed ones. Header.Sample is the sample index at which they were
// current.
//
// Quality, when not nil, holds the quality metrics and label of each
// template's unit, in the same order (docs/quality.md), measured over the
// device samples [QualityFrom, Header.Sample).
type TemplateBatch struct {
	Header
	Templates   []Template
	Quality     []Unit
	QualityFrom uint64
}

// Full reports whether m is a full snapshot.
func (m *TemplateBatch) Full() bool { return m.Flags&FlagFullSnapshot != 0 }

// AppendBinary appends the binary encoding of m to dst.
func (m *TemplateBatch) AppendBinary(dst []byte) ([]byte, error) {
	for i := range m.Templates {
		t := &m.Templates[i]
		if t.Pre < 0 || (len(t.Waveform) > 0 && t.Pre >= len(t.Waveform)) {
			return dst, fmt.Errorf("schema: template of unit %d: pre %d outside waveform of %d samples", t.Unit, t.Pre, len(t.Waveform))
		}
		if t.Count < 0 {
			return dst, fmt.Errorf("schema: template of unit %d: negative count %d", t.Unit, t.Count)
		}
	}
	if m.Quality != nil {
		if len(m.Quality) != len(m.Templates) {
			return dst, fmt.Errorf("schema: %d quality records for %d templates", len(m.Quality), len(m.Templates))
		}
		for i, q := range m.Quality {
			if q.ID != m.Templates[i].Unit {
				return dst, fmt.Errorf("schema: quality record %d is unit %d, template %d is unit %d", i, q.ID, i, m.Templates[i].Unit)
			}
		}
	}
	dst = appendHeader(dst, TypeTemplates, m.Flags, m.Sample, m.Rate, m.Published)
	dst = le.AppendUint32(dst, uint32(len(m.Templates)))
	dst = le.AppendUint32(dst, 0)
	for i := range m.Templates {
		t := &m.Templates[i]
		dst = le.AppendUint32(dst, uint32(t.Unit))
		dst = le.AppendUint32(dst, uint32(t.Channel))
		dst = le.AppendUint32(dst, uint32(t.Pre))
		dst = le.AppendUint32(dst, uint32(len(t.Waveform)))
		dst = le.AppendUint32(dst, math.Float32bits(t.PeakUV))
		dst = le.AppendUint32(dst, uint32(min(uint64(t.Count), math.MaxUint32)))
		for _, v := range t.Waveform {
			dst = le.AppendUint32(dst, math.Float32bits(v))
		}
	}
	if m.Quality != nil {
		dst = le.AppendUint32(dst, uint32(len(m.Quality)))
		dst = le.AppendUint16(dst, QualityRecordSize)
		dst = le.AppendUint16(dst, 0)
		dst = le.AppendUint64(dst, m.QualityFrom)
		for i := range m.Quality {
			q := &m.Quality[i]
			dst = le.AppendUint32(dst, uint32(q.ID))
			dst = le.AppendUint32(dst, uint32(min(uint64(max(q.NumSpikes, 0)), math.MaxUint32)))
			dst = le.AppendUint32(dst, uint32(int32(max(min(q.ISIViolationsCount, math.MaxInt32), -1))))
			dst = le.AppendUint32(dst, uint32(int32(max(min(q.RPViolations, math.MaxInt32), -1))))
			for _, v := range [...]float64{q.FiringRate, q.PresenceRatio, q.SNR, q.ISIViolationsRatio, q.RPContamination, q.AmplitudeCutoff, q.AmplitudeMedian} {
				dst = le.AppendUint32(dst, math.Float32bits(float32(v)))
			}
			dst = append(dst, byte(q.Label), 0, 0, 0)
		}
	}
	return dst, nil
}

// MarshalBinary returns the binary encoding of m.
func (m *TemplateBatch) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes a binary templates message into m.
func (m *TemplateBatch) UnmarshalBinary(data []byte) error {
	if err := decodeHeader(data, TypeTemplates, &m.Header); err != nil {
		return err
	}
	r := reader{t: TypeTemplates, data: data, off: HeaderSize}
	n := r.count("count", templateFixed)
	r.u32("reserved")
	if r.err != nil {
		return r.err
	}
	m.Templates = make([]Template, n)
	for i := range m.Templates {
		t := &m.Templates[i]
		t.Unit = int32(r.u32("unit"))
		t.Channel = int32(r.u32("channel"))
		preAt := r.off
		t.Pre = int(r.u32("pre"))
		w := r.count("waveform_len", 4)
		t.PeakUV = r.f32("peak_uv")
		t.Count = int(r.u32("spike_count"))
		if r.err != nil {
			return r.err
		}
		if w > 0 && t.Pre >= w {
			r.fail("pre", preAt, "pre %d outside waveform of %d samples", t.Pre, w)
			return r.err
		}
		t.Waveform = make([]float32, w)
		for j := range t.Waveform {
			t.Waveform[j] = r.f32("waveform")
		}
	}
	m.Quality, m.QualityFrom = nil, 0
	if r.err != nil || len(r.data)-r.off < qualityFixed {
		return r.err // no quality section (older writers, or none)
	}
	qn := int(r.u32("quality_count"))
	sizeAt := r.off
	size := int(r.u16("quality_record_size"))
	r.u16("reserved")
	m.QualityFrom = r.u64("quality_from")
	switch {
	case r.err != nil:
		return r.err
	case qn != len(m.Templates):
		r.fail("quality_count", sizeAt-4, "%d quality records for %d templates", qn, len(m.Templates))
		return r.err
	case size < QualityRecordSize:
		r.fail("quality_record_size", sizeAt, "%d, want >= %d", size, QualityRecordSize)
		return r.err
	case !r.need(qn*size, "quality"):
		return r.err
	}
	m.Quality = make([]Unit, qn)
	for i := range m.Quality {
		q := &m.Quality[i]
		start := r.off
		q.ID = int32(r.u32("unit"))
		if q.ID != m.Templates[i].Unit {
			r.fail("unit", start, "quality record %d is unit %d, template %d is unit %d", i, q.ID, i, m.Templates[i].Unit)
			return r.err
		}
		q.Channel = m.Templates[i].Channel
		q.NumSpikes = int(r.u32("num_spikes"))
		q.ISIViolationsCount = int(int32(r.u32("isi_violations_count")))
		q.RPViolations = int(int32(r.u32("rp_violations")))
		for _, f := range []*float64{&q.FiringRate, &q.PresenceRatio, &q.SNR, &q.ISIViolationsRatio, &q.RPContamination, &q.AmplitudeCutoff, &q.AmplitudeMedian} {
			*f = float64(r.f32("metric"))
		}
		q.Label = Label(r.u8("label"))
		r.off = start + size // fields later versions append
	}
	return r.err
}

// ---------------------------------------------------------------- raw

// RawBlock is a block of raw (or, with FlagFiltered, band-passed) samples
// of one channel group, time-major int16 counts. Header.Sample is the
// block's first sample; FirstChannel the probe channel of the group's
// column 0.
type RawBlock struct {
	Header
	Channels     int
	FirstChannel int
	Gain         float64 // µV per count
	Samples      []int16 // len = Channels * samples per channel, time-major
}

// Filtered reports whether the samples are band-passed.
func (m *RawBlock) Filtered() bool { return m.Flags&FlagFiltered != 0 }

// Degraded reports whether the estimate's bin, or one in the decoder's lag
// window, overlapped a gap in the data: its values are finite but less
// trustworthy.
func (m *EstimateMsg) Degraded() bool { return m.Flags&FlagDegraded != 0 }

// Len returns the number of samples per channel.
func (m *RawBlock) Len() int {
	if m.Channels <= 0 {
		return 0
	}
	return len(m.Samples) / m.Channels
}

// AppendBinary appends the binary encoding of m to dst.
func (m *RawBlock) AppendBinary(dst []byte) ([]byte, error) {
	if m.Channels <= 0 || len(m.Samples)%m.Channels != 0 {
		return dst, fmt.Errorf("schema: raw block: %d samples do not fill %d channels", len(m.Samples), m.Channels)
	}
	if m.FirstChannel < 0 {
		return dst, fmt.Errorf("schema: raw block: first channel %d", m.FirstChannel)
	}
	dst = slices.Grow(dst, rawBodyOffset+2*len(m.Samples))
	dst = appendHeader(dst, TypeRaw, m.Flags, m.Sample, m.Rate, m.Published)
	dst = le.AppendUint32(dst, uint32(m.Channels))
	dst = le.AppendUint32(dst, uint32(m.FirstChannel))
	dst = le.AppendUint64(dst, math.Float64bits(m.Gain))
	dst = le.AppendUint32(dst, uint32(m.Len()))
	dst = le.AppendUint32(dst, 0)
	for _, v := range m.Samples {
		dst = le.AppendUint16(dst, uint16(v))
	}
	return dst, nil
}

// AppendRaw appends the binary raw message of channels [firstChannel,
// firstChannel+n) of a time-major block of samples with channels
// channels (first sample index first, rate Hz, gain µV per count)
// without building a RawBlock; flags is FlagFiltered or 0. The caller
// checks the channel range.
func AppendRaw(dst []byte, flags uint16, first uint64, rate, gain float64, samples []int16, channels, firstChannel, n int) []byte {
	rows := len(samples) / channels
	dst = slices.Grow(dst, rawBodyOffset+2*rows*n)
	dst = appendHeader(dst, TypeRaw, flags, first, rate, 0)
	dst = le.AppendUint32(dst, uint32(n))
	dst = le.AppendUint32(dst, uint32(firstChannel))
	dst = le.AppendUint64(dst, math.Float64bits(gain))
	dst = le.AppendUint32(dst, uint32(rows))
	dst = le.AppendUint32(dst, 0)
	for t := range rows {
		for _, v := range samples[t*channels+firstChannel : t*channels+firstChannel+n] {
			dst = le.AppendUint16(dst, uint16(v))
		}
	}
	return dst
}

// rawBodyOffset is where a raw message's samples start.
const rawBodyOffset = HeaderSize + 24

// MarshalBinary returns the binary encoding of m.
func (m *RawBlock) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes a binary raw message into m, reusing m.Samples'
// storage.
func (m *RawBlock) UnmarshalBinary(data []byte) error {
	if err := decodeHeader(data, TypeRaw, &m.Header); err != nil {
		return err
	}
	r := reader{t: TypeRaw, data: data, off: HeaderSize}
	chAt := r.off
	ch := r.u32("channels")
	m.FirstChannel = int(r.u32("first_channel"))
	m.Gain = r.f64("gain")
	n := r.u32("samples")
	r.u32("reserved")
	if r.err != nil {
		return r.err
	}
	if ch == 0 {
		r.fail("channels", chAt, "0 channels")
		return r.err
	}
	total := uint64(ch) * uint64(n)
	if total*2 > uint64(len(data)-r.off) {
		return &DecodeError{Type: TypeRaw, Offset: chAt, Field: "samples", Err: ErrShort,
			Detail: fmt.Sprintf("%d channels x %d samples need %d bytes, %d left", ch, n, total*2, len(data)-r.off)}
	}
	m.Channels = int(ch)
	if uint64(cap(m.Samples)) < total {
		m.Samples = make([]int16, total)
	}
	m.Samples = m.Samples[:total]
	p := data[r.off:]
	for i := range m.Samples {
		m.Samples[i] = int16(le.Uint16(p[2*i:]))
	}
	return nil
}

// ---------------------------------------------------------------- any

// Decode decodes any binary spikeline message.
func Decode(data []byte) (Message, error) {
	t, err := PeekType(data)
	if err != nil {
		return nil, err
	}
	m := newMessage(t)
	if m == nil {
		return nil, &DecodeError{Type: t, Offset: 5, Field: "type", Err: ErrType, Detail: fmt.Sprintf("unknown type %d", uint8(t))}
	}
	if err := m.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	return m, nil
}

// decodable is a message that decodes itself from binary and JSON.
type decodable interface {
	Message
	UnmarshalBinary([]byte) error
	json.Unmarshaler
}

// newMessage returns a new, empty message of type t, or nil for an
// unknown type.
func newMessage(t Type) decodable {
	switch t {
	case TypeSpikes:
		return new(SpikeBatch)
	case TypeEstimate:
		return new(EstimateMsg)
	case TypeStatus:
		return new(Status)
	case TypeEvents:
		return new(EventBatch)
	case TypeTemplates:
		return new(TemplateBatch)
	case TypeRaw:
		return new(RawBlock)
	}
	return nil
}

// Encode appends the binary encoding of any message to dst.
func Encode(dst []byte, m Message) ([]byte, error) {
	switch m := m.(type) {
	case *SpikeBatch:
		return m.AppendBinary(dst)
	case *EstimateMsg:
		return m.AppendBinary(dst)
	case *Status:
		return m.AppendBinary(dst)
	case *EventBatch:
		return m.AppendBinary(dst)
	case *TemplateBatch:
		return m.AppendBinary(dst)
	case *RawBlock:
		return m.AppendBinary(dst)
	}
	return dst, fmt.Errorf("schema: cannot encode %T", m)
}
