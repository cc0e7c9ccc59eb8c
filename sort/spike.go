package sort

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
