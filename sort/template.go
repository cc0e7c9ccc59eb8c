package sort

// Template is a learned unit's mean waveform on its channel.
//
// Waveform is in µV on the band-passed signal, Pre samples before the
// aligned extremum and len(Waveform)-Pre-1 after it. Count is the number
// of spikes the template was learned or tracked from.
//
// With probe geometry (Config.Probe) a unit's template spans its
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
