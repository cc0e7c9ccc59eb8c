package sort

// Hooks into learning for the diagnostics in package sort_test.

// SetLearnHooks installs (or, with nil, removes) the learning hooks: labels
// receives each channel's clustering (k-means labels, then the labels after
// merging), debug the learning diagnostics.
func SetLearnHooks(labels func(ch int, tau []uint64, label []int), debug func(ch int, format string, a ...any)) {
	learnLabels, learnDebug = labels, debug
}
