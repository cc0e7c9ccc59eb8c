package sort

import (
	"reflect"
	"testing"
	"time"
)

// TestLearnPassHelperRelearnsHeldChannel checks that the normal-priority
// helper ends a live learning pass even when the idle-priority thread has
// taken a channel and never finishes it (it starves while the cores are
// busy): the helper learns that channel again, the result is the one
// learning it alone gives, and the starving copy finishing late changes
// nothing.
func TestLearnPassHelperRelearnsHeldChannel(t *testing.T) {
	var jobs []learnJob
	var p learnParams
	for ch := range 3 {
		j, pp := learnBenchJob(200)
		j.ch, p = ch, pp
		jobs = append(jobs, j)
	}
	want := make([][][]float32, len(jobs))
	for i, j := range jobs {
		want[i], _ = learnChannel(j, p)
		if len(want[i]) == 0 {
			t.Fatalf("channel %d: no unit learned", i)
		}
	}
	lp := newLearnPass(jobs, p)
	if lp.next.Add(1) != 1 { // job 0 taken by the (starving) idle thread
		t.Fatal("job 0 already taken")
	}
	if !lp.takeHelp() {
		t.Fatal("no helper granted")
	}
	if lp.takeHelp() {
		t.Fatal("a second helper granted")
	}
	lp.helpWork()
	select {
	case <-lp.done:
	default:
		t.Fatalf("pass not done after the helper: %d jobs left", lp.left.Load())
	}
	for i, r := range lp.out {
		if r.ch != i || !reflect.DeepEqual(r.waves, want[i]) {
			t.Errorf("job %d: channel %d, %d templates; want channel %d, %d templates, the same as learnChannel alone", i, r.ch, len(r.waves), i, len(want[i]))
		}
		if got := lp.dup[i].Load(); got != (i == 0) {
			t.Errorf("job %d: learned twice = %v, want %v", i, got, i == 0)
		}
	}
	first := lp.out[0].waves
	lp.learn(0) // the starving copy ends at last
	if lp.left.Load() != 0 || &lp.out[0].waves[0][0] != &first[0][0] {
		t.Errorf("the late copy changed the pass: %d left, result replaced", lp.left.Load())
	}
}

// TestLearnPassWatchJoins checks that the watcher ends a pass whose only
// goroutine holds a channel and never finishes it: after helpAfter, and,
// in a first pass (starveAfter > 0), once no channel has been learned for
// starveAfter even when helpAfter is far away.
func TestLearnPassWatchJoins(t *testing.T) {
	j, p := learnBenchJob(200)
	for _, c := range []struct {
		name              string
		helpAfter, starve time.Duration
	}{
		{"after helpAfter", 50 * time.Millisecond, 0},
		{"starving first pass", time.Hour, 50 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			lp := newLearnPass([]learnJob{j, j}, p)
			lp.next.Add(1) // job 0 held by a thread that never runs
			ended := make(chan struct{})
			go func() { lp.watch(c.helpAfter, c.starve); close(ended) }()
			select {
			case <-ended:
			case <-time.After(time.Minute):
				t.Fatalf("the pass did not end: %d of 2 jobs left", lp.left.Load())
			}
			if !lp.dup[0].Load() || lp.left.Load() != 0 {
				t.Errorf("job 0 learned twice = %v, %d jobs left; want true, 0", lp.dup[0].Load(), lp.left.Load())
			}
		})
	}
}
