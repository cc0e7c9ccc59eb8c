package background

import "syscall"

// lowerPriority sets the calling thread's nice value to Nice. On Linux
// setpriority(PRIO_PROCESS, tid) applies to one thread. Raising a nice
// value needs no privilege; if it fails anyway (a seccomp filter), the
// work runs at normal priority, still on a P of its own.
func lowerPriority() {
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), Nice)
}
