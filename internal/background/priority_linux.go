package background

import (
	"syscall"
	"unsafe"
)

// schedIdle is Linux's SCHED_IDLE scheduling policy (sched(7)).
const schedIdle = 5

// lowerPriority puts the calling thread in the SCHED_IDLE policy, and at
// nice Nice should that be refused (a seccomp filter): both apply to this
// thread alone (the tid), and neither needs a privilege to enter.
//
// SCHED_IDLE rather than nice alone: a CPU that runs only SCHED_IDLE
// threads counts as idle when the kernel places a waking thread, so the
// hot path's threads go there and preempt the background work at once.
// With nice 19 alone they were queued behind another thread of normal
// priority on the other core while this one ran (perf sched, docs/
// performance.md).
func lowerPriority() {
	tid := syscall.Gettid()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, Nice)
	var param struct{ priority int32 } // struct sched_param
	_, _, _ = syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), schedIdle, uintptr(unsafe.Pointer(&param)))
}
