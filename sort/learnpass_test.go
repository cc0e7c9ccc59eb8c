package sort

import (
	"reflect"
	"testing"
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
