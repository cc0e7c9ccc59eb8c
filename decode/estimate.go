package decode

// Estimate is a decoder's output for one bin.
//
// End is the device sample index one past the bin's last sample; Rate the
// device sample rate. Values are in the order of Names (e.g. "vx", "vy").
type Estimate struct {
	End    uint64
	Rate   float64
	Names  []string
	Values []float64
	// Degraded is set when the estimate was made without full data: for a
	// Wiener filter, the bin or a bin in its lag window overlapped a gap
	// in the data (or preceded the stream's start) and was replaced by the
	// training mean; for a Kalman filter, the bin overlapped a gap and the
	// estimate is the filter's prediction alone. Consumers that must not
	// act on such bins should skip them; Values are always finite.
	Degraded bool
}
