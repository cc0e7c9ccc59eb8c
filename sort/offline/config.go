package offline

import "github.com/spikeline/spikeline/sort"

// Pass 1 of an offline sort learns from more snippets per channel and
// re-learns more often than a live sorter, within a memory budget.
const (
	learnSnippets     = 3000      // snippets kept per channel for learning in pass 1
	learnSnippetBytes = 256 << 20 // most bytes of snippets pass 1 keeps over all channels
	learnRelearnEvery = 40        // seconds: longest gap between pass 1's learning passes
)

// LearnConfig returns the configuration of pass 1 of an offline sort: cfg
// with up to learnSnippets snippets per channel (fewer on many channels, so
// the snippets stay within learnSnippetBytes; never fewer than the sorter's
// default) and learning passes at most learnRelearnEvery seconds apart.
// Fields the caller set are kept. Measured on simulated 32-channel, 5-minute
// recordings (docs/scoring.md), both raise accuracy over the live defaults:
// more examples of each unit and more chances for rare units to be learned.
func LearnConfig(cfg sort.Config, channels int, rate float64) sort.Config {
	def := sort.Default()
	if cfg.MaxSnippets == 0 {
		pre, post, tail := cfg.Pre, cfg.Post, cfg.Tail
		if pre == 0 {
			pre = def.Pre
		}
		if post == 0 {
			post = def.Post
		}
		if tail == 0 {
			tail = def.Tail
		}
		snippet := 4 * ((pre+post+tail)*rate/1000 + 1) // bytes of one snippet
		fit := float64(learnSnippetBytes) / (snippet * float64(max(1, channels)))
		cfg.MaxSnippets = int(max(float64(def.MaxSnippets), min(learnSnippets, fit)))
	}
	if cfg.RelearnEvery == 0 {
		cfg.RelearnEvery = min(def.RelearnEvery, learnRelearnEvery)
	}
	return cfg
}
