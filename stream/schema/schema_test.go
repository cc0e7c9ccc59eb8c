package schema

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func sampleMessages() []Message {
	return []Message{
		&SpikeBatch{Header: Header{Type: TypeSpikes, Sample: 30000, Rate: 30000, Published: 1_700_000_000_123_456_789}, End: 30600,
			Spikes: []Spike{{Sample: 30012, Channel: 3, Unit: 7, Amplitude: -84.5}, {Sample: 30480, Channel: 31, Unit: 0, Amplitude: -52.25}}},
		&SpikeBatch{Header: Header{Type: TypeSpikes, Sample: 600, Rate: 20000}, End: 1200, Spikes: []Spike{}},
		&EstimateMsg{Header: Header{Type: TypeEstimate, Sample: 31500, Rate: 30000, Published: 42}, Model: "ridge",
			Names: []string{"vx", "vy"}, Values: []float64{0.125, -3.5}},
		&Status{Header: Header{Type: TypeStatus, Sample: 99, Rate: 30000, Published: 7},
			Link:   LinkStats{Frames: 1, Bytes: 2, Samples: 3, CRCErrors: 4, BadFrames: 5, SkippedBytes: 6, Gaps: 7, LostSamples: 8, Resets: 9, FormatChanges: 10, Disconnects: 11, Reconnects: 12},
			Uptime: 3 * time.Second, SampleRate: 29999.5, SpikeRate: 120.25, LatencyP50: 800 * time.Microsecond,
			LatencyP99: 2 * time.Millisecond, LatencyMax: 5 * time.Millisecond, PipelineDrops: 1, Sent: 1000,
			PublishDropped: 2, PublishErrors: 3, Reconnects: 4, Threshold: 4.5,
			NoiseUV: []float32{5.5, 6.25}, RateHz: []float32{10, 0.5}},
		&EventBatch{Header: Header{Type: TypeEvents, Sample: 5000, Rate: 30000, Published: 9}, Events: []Event{
			{Kind: EventKind(EventGap), Sample: 4800, Count: 120, Offset: 123456, Unit: -1, Channel: -1, Detail: "frame counter jumped"},
			{Kind: EventTemplateAdded, Sample: 4900, Unit: 12, Channel: 5},
			{Kind: EventThreshold, Sample: 4950, Unit: -1, Channel: -1, Value: 5},
		}},
		&TemplateBatch{Header: Header{Type: TypeTemplates, Flags: FlagFullSnapshot, Sample: 6000, Rate: 30000, Published: 11}, Templates: []Template{
			{Unit: 1, Channel: 0, Pre: 1, Waveform: []float32{-10, -80, 20}, PeakUV: -80, Count: 55},
			{Unit: 2, Channel: 9, Pre: 0, Waveform: []float32{-60}, PeakUV: -60, Count: 1},
		}, QualityFrom: 1000, Quality: []Unit{
			{ID: 1, Channel: 0, Label: Good, Metrics: Metrics{NumSpikes: 55, FiringRate: 11, PresenceRatio: 1, SNR: 8.5,
				ISIViolationsRatio: 0, ISIViolationsCount: 0, RPContamination: 0, RPViolations: 0, AmplitudeCutoff: 0.125, AmplitudeMedian: -79.5}},
			{ID: 2, Channel: 9, Label: MUA, Metrics: Metrics{NumSpikes: 1, FiringRate: 0.25, PresenceRatio: 0.5, SNR: 6,
				ISIViolationsRatio: 0, ISIViolationsCount: 0, RPContamination: 0.75, RPViolations: 3, AmplitudeCutoff: 0.5, AmplitudeMedian: -60}},
		}},
		&RawBlock{Header: Header{Type: TypeRaw, Flags: FlagFiltered, Sample: 70, Rate: 30000, Published: 13}, Channels: 2, FirstChannel: 32, Gain: 0.195,
			Samples: []int16{1, -2, 3, -4, 32767, -32768}},
	}
}

func TestSchemaBinaryRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b, err := Encode(nil, m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		typ, err := PeekType(b)
		if err != nil || typ != m.Head().Type {
			t.Fatalf("%T: PeekType = %v, %v", m, typ, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T round trip:\n got %+v\nwant %+v", m, got, m)
		}
	}
}

func TestSchemaJSONRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !strings.Contains(string(b), `"v":1`) || !strings.Contains(string(b), `"pub_ns":`) || !strings.Contains(string(b), `"rate":`) {
			t.Errorf("%T: JSON lacks v/pub_ns/rate: %s", m, b)
		}
		got, err := DecodeJSON(b)
		if err != nil {
			t.Fatalf("%T: %v\n%s", m, err, b)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T JSON round trip:\n got %+v\nwant %+v\n%s", m, got, m, b)
		}
	}
}

// Every truncation of every message is refused with a DecodeError naming
// an offset inside the message; none panics.
func TestSchemaTruncated(t *testing.T) {
	for _, m := range sampleMessages() {
		b, _ := Encode(nil, m)
		for n := 0; n < len(b); n++ {
			got, err := Decode(b[:n])
			if _, ok := m.(*SpikeBatch); !ok && n >= len(b) {
				continue
			}
			if tb, ok := m.(*TemplateBatch); ok && err == nil && tb.Quality != nil {
				// Cut before the quality section is complete enough to
				// be read: a templates message without one (a prefix that
				// is a complete message of an older writer).
				plain := *tb
				plain.Quality, plain.QualityFrom = nil, 0
				pb, _ := Encode(nil, &plain)
				if n >= len(pb) && n < len(pb)+qualityFixed && reflect.DeepEqual(got, &plain) {
					continue
				}
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				// Variable-length messages may decode a prefix only when
				// the prefix is itself a complete message; ours never are.
				t.Fatalf("%T cut to %d of %d bytes: err = %v, want DecodeError", m, n, len(b), err)
			}
			if de.Offset < 0 || de.Offset > n {
				t.Errorf("%T cut to %d: offset %d outside input", m, n, de.Offset)
			}
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrValue) {
				t.Errorf("%T cut to %d: %v, want ErrShort", m, n, err)
			}
		}
	}
}

func TestSchemaBadHeader(t *testing.T) {
	b, _ := Encode(nil, sampleMessages()[0])
	cases := []struct {
		name string
		mod  func([]byte)
		want error
	}{
		{"magic", func(b []byte) { b[0] = 'X' }, ErrMagic},
		{"version", func(b []byte) { b[4] = 9 }, ErrVersion},
		{"type", func(b []byte) { b[5] = 200 }, ErrType},
		{"huge count", func(b []byte) { le.PutUint32(b[40:], math.MaxUint32) }, ErrShort},
		{"small record", func(b []byte) { le.PutUint16(b[44:], 4) }, ErrValue},
		{"end before first", func(b []byte) { le.PutUint64(b[32:], 1) }, ErrValue},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bb := append([]byte(nil), b...)
			c.mod(bb)
			_, err := Decode(bb)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "schema: decode ") || !strings.Contains(err.Error(), "byte ") {
				t.Errorf("error does not say where: %v", err)
			}
		})
	}
}

// Readers honour the record size, so a later version may append fields to
// each spike record.
func TestSchemaSpikeRecordSizeExtensible(t *testing.T) {
	m := sampleMessages()[0].(*SpikeBatch)
	b, _ := m.MarshalBinary()
	// Rebuild with 24-byte records (4 unknown trailing bytes each).
	ext := append([]byte(nil), b[:spikesFixed]...)
	le.PutUint16(ext[44:], 24)
	for i := range m.Spikes {
		rec := b[spikesFixed+i*SpikeRecordSize : spikesFixed+(i+1)*SpikeRecordSize]
		ext = append(ext, rec...)
		ext = append(ext, 0xAA, 0xBB, 0xCC, 0xDD)
	}
	var got SpikeBatch
	if err := got.UnmarshalBinary(ext); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Spikes, m.Spikes) {
		t.Fatalf("got %+v want %+v", got.Spikes, m.Spikes)
	}
}

func TestSchemaEncodeRefusesImpossible(t *testing.T) {
	bad := []Message{
		&EstimateMsg{Names: []string{"a"}, Values: []float64{1, 2}},
		&TemplateBatch{Templates: []Template{{Pre: 5, Waveform: []float32{1, 2}}}},
		&RawBlock{Channels: 3, Samples: []int16{1, 2}},
		&Status{NoiseUV: []float32{1}, RateHz: []float32{1, 2}},
	}
	for _, m := range bad {
		if _, err := Encode(nil, m); err == nil {
			t.Errorf("%T %+v: encoded, want error", m, m)
		}
	}
}

func TestSchemaAppendSpikesNoAlloc(t *testing.T) {
	spikes := make([]Spike, 64)
	buf := make([]byte, 0, spikesFixed+SpikeRecordSize*len(spikes))
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendSpikes(buf[:0], 1, 2, 30000, 0, spikes)
	})
	if allocs != 0 {
		t.Fatalf("AppendSpikes allocates %v times per call", allocs)
	}
}

// TestSchemaHexExample writes the worked example of docs/schemas.md, so the
// document shows bytes this code really produces. Regenerate with
// go test ./stream -run HexExample -update.
func TestSchemaHexExample(t *testing.T) {
	m := &SpikeBatch{Header: Header{Sample: 30000, Rate: 30000, Published: 1_700_000_000_123_456_789}, End: 30600,
		Spikes: []Spike{{Sample: 30012, Channel: 3, Unit: 7, Amplitude: -84.5}, {Sample: 30480, Channel: 31, Unit: 0, Amplitude: -52.25}}}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString("# spikes message: first 30000, end 30600, rate 30000 Hz, published 1700000000123456789 ns,\n")
	sb.WriteString("# spikes (30012, ch 3, unit 7, -84.5 uV) and (30480, ch 31, unit 0, -52.25 uV)\n")
	sb.WriteString("# generated by TestSchemaHexExample; offset: bytes\n")
	for off := 0; off < len(b); off += 16 {
		end := min(off+16, len(b))
		sb.WriteString(hexLine(off, b[off:end]))
	}
	got := sb.String()
	path := "testdata/spikes_example.hex"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(want) != got {
		t.Fatalf("%s is stale; run go test ./stream -run HexExample -update and copy it into docs/schemas.md\ngot:\n%s", path, got)
	}
	doc, err := os.ReadFile("../docs/schemas.md")
	if err == nil && !strings.Contains(string(doc), strings.SplitN(got, "\n", 4)[3]) {
		t.Errorf("docs/schemas.md does not contain the current hex example from %s", path)
	}
}

func hexLine(off int, b []byte) string {
	var sb strings.Builder
	sb.WriteString(strings.ToUpper(hex.EncodeToString([]byte{byte(off >> 8), byte(off)})))
	sb.WriteString(": ")
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	sb.WriteByte('\n')
	return sb.String()
}

// Undefined metrics (NaN) cross both forms as NaN (null in JSON); a
// templates message without quality stays without; the quality records
// must match the templates.
func TestSchemaTemplateQuality(t *testing.T) {
	m := sampleMessages()[5].(*TemplateBatch)
	q := *m
	q.Quality = slices.Clone(m.Quality)
	nan := math.NaN()
	q.Quality[1].RPContamination, q.Quality[1].AmplitudeCutoff, q.Quality[1].ISIViolationsCount = nan, nan, -1
	b, err := Encode(nil, &q)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(&q)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(j), `"rp_contamination":null,"rp_violations":3,"amplitude_cutoff":null`) ||
		!strings.Contains(string(j), `"quality_from":1000`) || !strings.Contains(string(j), `"label":"good"`) {
		t.Errorf("JSON: %s", j)
	}
	fromBin, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := DecodeJSON(j)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*TemplateBatch{fromBin.(*TemplateBatch), fromJSON.(*TemplateBatch)} {
		g := got.Quality[1]
		if !math.IsNaN(g.RPContamination) || !math.IsNaN(g.AmplitudeCutoff) || g.ISIViolationsCount != -1 || g.RPViolations != 3 || g.Label != MUA || g.Channel != 9 {
			t.Errorf("NaN round trip: %+v", g)
		}
	}

	plain := &TemplateBatch{Header: m.Header, Templates: m.Templates}
	b, _ = Encode(nil, plain)
	j, _ = json.Marshal(plain)
	if strings.Contains(string(j), "quality") {
		t.Errorf("JSON without quality: %s", j)
	}
	for _, d := range []func() (Message, error){func() (Message, error) { return Decode(b) }, func() (Message, error) { return DecodeJSON(j) }} {
		got, err := d()
		if err != nil || got.(*TemplateBatch).Quality != nil {
			t.Errorf("without quality: %+v %v", got, err)
		}
	}

	bad := q
	bad.Quality = q.Quality[:1]
	if _, err := Encode(nil, &bad); err == nil {
		t.Error("1 quality record for 2 templates encoded")
	}
	if _, err := json.Marshal(&bad); err == nil {
		t.Error("1 quality record for 2 templates encoded as JSON")
	}
	bad.Quality = []Unit{q.Quality[1], q.Quality[0]}
	if _, err := Encode(nil, &bad); err == nil {
		t.Error("quality records in another order encoded")
	}
	// A record smaller than this version's is refused.
	b, _ = Encode(nil, m)
	at := len(b) - qualityFixed - 2*QualityRecordSize + 4
	le.PutUint16(b[at:], 40)
	if _, err := Decode(b); !errors.Is(err, ErrValue) || !strings.Contains(err.Error(), "quality_record_size") {
		t.Errorf("record size 40: %v", err)
	}
	// A larger record (a later version's) is read by its first fields.
	b, _ = Encode(nil, m)
	head := b[:len(b)-2*QualityRecordSize]
	le.PutUint16(head[len(head)-qualityFixed+4:], QualityRecordSize+8)
	grown := slices.Clone(head)
	for i := range 2 {
		rec := b[len(head)+i*QualityRecordSize : len(head)+(i+1)*QualityRecordSize]
		grown = append(append(grown, rec...), 9, 9, 9, 9, 9, 9, 9, 9)
	}
	got, err := Decode(grown)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("larger records: %v\n got %+v\nwant %+v", err, got, m)
	}
}
