package sort

// Template is a learned unit's mean waveform on its channel.
//
// Waveform is in µV on the band-passed signal, Pre samples before the
// aligned extremum and len(Waveform)-Pre-1 after it. Count is the number
// of spikes the template was learned or tracked from.
type Template struct {
	Unit     int32
	Channel  int32
	Pre      int
	Waveform []float32
	PeakUV   float32 // value at the aligned extremum (negative for troughs)
	Count    int
}
