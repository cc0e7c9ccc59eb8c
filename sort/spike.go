package sort

import "github.com/spikeline/spikeline/stream/schema"

// Spike is one detected spike (schema.Spike: sample index of the trough,
// channel, unit — 0 detected but not sorted —, amplitude in µV).
type Spike = schema.Spike
