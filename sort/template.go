package sort

import "github.com/spikeline/spikeline/stream/schema"

// Template is a learned unit's mean waveform on its channel
// (schema.Template: Waveform in µV on the band-passed signal, Pre samples
// before the aligned extremum, Count the spikes it was learned from).
type Template = schema.Template
