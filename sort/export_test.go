package sort

import "math"

// Hooks into learning for the diagnostics in package sort_test.

// SetLearnHooks installs (or, with nil, removes) the learning hooks: labels
// receives each channel's clustering (k-means labels, then the labels after
// merging), debug the learning diagnostics.
func SetLearnHooks(labels func(ch int, tau []uint64, label []int), debug func(ch int, format string, a ...any)) {
	learnLabels, learnDebug = labels, debug
}

// NeighbourPair is two units of a sorter with geometry and how alike
// dedup finds them.
type NeighbourPair struct {
	A, B     int32   // unit ids, A the larger main trough
	Residual float64 // sameNeuron's least residual, σ²
	Energy   float64 // B's energy over the common channels, σ²
}

// NeighbourPairs lists every pair of a sorter's units (with geometry) that
// dedup compares.
func NeighbourPairs(s *Sorter) []NeighbourPair {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.g == nil {
		return nil
	}
	var out []NeighbourPair
	for _, A := range s.g.units {
		for _, B := range s.g.units {
			if A == B || A.peak[0] < B.peak[0] {
				continue
			}
			if _, r, e := s.alike(A, B); !math.IsInf(r, 1) {
				out = append(out, NeighbourPair{A.id, B.id, r, e})
			}
		}
	}
	return out
}
