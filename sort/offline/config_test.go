package offline

import (
	"testing"

	"github.com/spikeline/spikeline/sort"
)

func TestLearnConfig(t *testing.T) {
	def := sort.Default()
	c := LearnConfig(sort.Config{}, 32, 30000)
	if c.MaxSnippets != learnSnippets || c.RelearnEvery != learnRelearnEvery {
		t.Errorf("32 channels: MaxSnippets %d, RelearnEvery %g; want %d, %d", c.MaxSnippets, c.RelearnEvery, learnSnippets, learnRelearnEvery)
	}
	// Many channels: the snippets stay within the budget, but never fewer
	// than the live default.
	for _, n := range []int{384, 1024, 100000} {
		c := LearnConfig(sort.Config{}, n, 30000)
		bytes := float64(c.MaxSnippets) * float64(n) * 4 * ((def.Pre+def.Post+def.Tail)*30 + 1)
		if c.MaxSnippets < def.MaxSnippets || (c.MaxSnippets > def.MaxSnippets && bytes > learnSnippetBytes) {
			t.Errorf("%d channels: MaxSnippets %d (%.0f MB)", n, c.MaxSnippets, bytes/1e6)
		}
	}
	if c := LearnConfig(sort.Config{}, 384, 30000); c.MaxSnippets >= learnSnippets || c.MaxSnippets <= def.MaxSnippets {
		t.Errorf("384 channels: MaxSnippets %d, want between %d and %d", c.MaxSnippets, def.MaxSnippets, learnSnippets)
	}
	// What the caller set is kept.
	c = LearnConfig(sort.Config{MaxSnippets: 500, RelearnEvery: -1, Threshold: 5}, 32, 30000)
	if c.MaxSnippets != 500 || c.RelearnEvery != -1 || c.Threshold != 5 {
		t.Errorf("caller's settings changed: %+v", c)
	}
}
