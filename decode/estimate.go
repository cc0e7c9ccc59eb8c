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
}
