//go:build !linux

package background

// lowerPriority does nothing where thread priorities are not set per
// thread: the work still runs on a P of its own.
func lowerPriority() {}
