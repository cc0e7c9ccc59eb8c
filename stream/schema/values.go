package schema

import "fmt"

// The values that cross package lines and ride in messages. They are
// defined here, with no dependency, so that a subscriber decodes them
// with the standard library alone; the packages that make them name them
// with aliases (sort.Spike, sort.Template, quality.Unit, quality.Metrics,
// quality.Label) and device.Stats is a LinkStats.

// Spike is one detected spike.
//
// Sample is the device sample index of the trough (or peak, for positive
// detection). Unit is unique across channels and stable for the session
// once assigned; 0 means detected but not (yet) sorted.
type Spike struct {
	Sample    uint64
	Channel   int32
	Unit      int32
	Amplitude float32 // µV at the aligned extremum (negative for troughs)
}

// Template is a learned unit's mean waveform on its channel.
//
// Waveform is in µV on the band-passed signal, Pre samples before the
// aligned extremum and len(Waveform)-Pre-1 after it. Count is the number
// of spikes the template was learned or tracked from.
//
// With probe geometry (sort.Config.Probe) a unit's template spans its
// neighbourhood: Channels lists its channels, Channel first, and
// Footprint holds its waveform on each of them, channel after channel,
// len(Waveform) samples each (the first is Waveform), all aligned on the
// extremum on Channel. Without geometry both are nil.
type Template struct {
	Unit      int32
	Channel   int32
	Pre       int
	Waveform  []float32
	PeakUV    float32 // value at the aligned extremum (negative for troughs)
	Count     int
	Channels  []int32
	Footprint []float32
}

// Metrics are one unit's quality metrics, with SpikeInterface's names
// (the JSON keys and the columns of units.csv). A metric that is not
// defined for the unit is NaN, as in SpikeInterface; the two violation
// counts are -1 for a unit without spikes. Package sort/quality computes
// them (docs/quality.md).
type Metrics struct {
	NumSpikes          int     `json:"num_spikes"`
	FiringRate         float64 `json:"firing_rate"`          // spikes/s
	PresenceRatio      float64 `json:"presence_ratio"`       // fraction of PresenceBin bins with a spike
	SNR                float64 `json:"snr"`                  // max |template| / channel noise
	ISIViolationsRatio float64 `json:"isi_violations_ratio"` // Hill et al.
	ISIViolationsCount int     `json:"isi_violations_count"`
	RPContamination    float64 `json:"rp_contamination"` // Llobet et al.
	RPViolations       int     `json:"rp_violations"`
	AmplitudeCutoff    float64 `json:"amplitude_cutoff"` // Hill et al.
	AmplitudeMedian    float64 `json:"amplitude_median"` // µV, signed
}

// Label is a unit's curation label, as Kilosort and Phy name them.
type Label uint8

// Labels. Unlabelled is the zero value (no metrics).
const (
	Unlabelled Label = 0
	Good       Label = 1 // few refractory period violations
	MUA        Label = 2 // multi-unit activity: contaminated, or too few spikes to tell
)

func (l Label) String() string {
	switch l {
	case Good:
		return "good"
	case MUA:
		return "mua"
	case Unlabelled:
		return ""
	}
	return fmt.Sprintf("label(%d)", uint8(l))
}

// MarshalText encodes l by name ("good", "mua"; empty when unlabelled).
func (l Label) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText decodes a label name.
func (l *Label) UnmarshalText(b []byte) error {
	switch string(b) {
	case "good":
		*l = Good
	case "mua":
		*l = MUA
	case "":
		*l = Unlabelled
	default:
		return fmt.Errorf("quality: unknown label %q", b)
	}
	return nil
}

// Unit is one sorted unit with its metrics and label.
type Unit struct {
	ID      int32 // sort unit id
	Channel int32 // the template's channel (the first spike's if there is no template)
	Metrics
	Label Label
}

// LinkStats are a device link's counters since it was opened: the one
// list of them, which device.Stats (the counting side), the status
// message, /metrics and the snapshot share. LinkCounters names them in
// wire order.
type LinkStats struct {
	Frames        uint64 `json:"frames"`         // good data frames delivered
	Bytes         uint64 `json:"bytes"`          // bytes read from the input
	Samples       uint64 `json:"samples"`        // samples per channel delivered
	CRCErrors     uint64 `json:"crc_errors"`     // frames that failed the CRC
	BadFrames     uint64 `json:"bad_frames"`     // frames with a good CRC but an impossible header
	SkippedBytes  uint64 `json:"skipped_bytes"`  // bytes skipped while resynchronising
	Gaps          uint64 `json:"gaps"`           // gap events
	LostSamples   uint64 `json:"lost_samples"`   // samples per channel lost in gaps
	Resets        uint64 `json:"resets"`         // counter went backwards
	FormatChanges uint64 `json:"format_changes"` // channel count or rate changed
	Disconnects   uint64 `json:"disconnects"`
	Reconnects    uint64 `json:"reconnects"`
}

// LinkCounters are the names of the LinkStats counters (their JSON keys),
// in the order of Counters and of the status message's bytes.
var LinkCounters = [...]string{"frames", "bytes", "samples", "crc_errors", "bad_frames", "skipped_bytes",
	"gaps", "lost_samples", "resets", "format_changes", "disconnects", "reconnects"}

// Counters returns pointers to the counters of s in LinkCounters order.
func (s *LinkStats) Counters() [len(LinkCounters)]*uint64 {
	return [...]*uint64{&s.Frames, &s.Bytes, &s.Samples, &s.CRCErrors, &s.BadFrames, &s.SkippedBytes,
		&s.Gaps, &s.LostSamples, &s.Resets, &s.FormatChanges, &s.Disconnects, &s.Reconnects}
}
