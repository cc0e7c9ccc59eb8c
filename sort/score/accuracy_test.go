package score_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/score"
)

// The accuracy tests simulate a recording (package sim) with ground truth,
// sort it with the sorter's defaults and score it as SpikeInterface does.
// The default run is small (a few channels, tens of seconds); set
// SPIKELINE_LONG=1 for the full-size run that checks the project target:
// mean accuracy >= 0.90 over units with SNR >= 5, and >= 90% of them well
// detected. docs/scoring.md records the measured numbers.

// recording is a simulated recording kept in memory.
type recording struct {
	blocks []device.Block // Samples copied
	gt     []sort.Spike
	snr    map[int32]float64
	rate   float64
	chans  int
	gain   float64
}

func simulate(t testing.TB, cfg sim.Config) *recording {
	t.Helper()
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recording{snr: map[int32]float64{}, rate: s.Rate(), chans: cfg.Channels}
	for _, u := range s.Units() {
		rec.snr[u.ID] = u.SNR
	}
	ctx := context.Background()
	for {
		b, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Samples = slices.Clone(b.Samples)
		rec.gain = b.Gain
		rec.blocks = append(rec.blocks, b)
		rec.gt = s.TakeSpikes(rec.gt)
	}
	return rec
}

// sortRecording sorts rec the way `spikeline sort` does by default: with
// two deterministic passes, pass 1 learning templates over the whole
// recording (re-learning at growing intervals, so rare units are found
// too, from more snippets than live) and pass 2 sorting everything seeded with them; passes = 1 is the
// online, single causal pass (learning beside the stream, as live).
func sortRecording(t testing.TB, rec *recording, cfg sort.Config, passes int) []sort.Spike {
	t.Helper()
	run := func(cfg sort.Config) ([]sort.Spike, []sort.Template) {
		s, err := sort.New(cfg, rec.chans, rec.rate, rec.gain)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var out []sort.Spike
		start := time.Now()
		for _, b := range rec.blocks {
			if out, err = s.Process(b, out); err != nil {
				t.Fatal(err)
			}
			if !cfg.Deterministic {
				// Online, learning runs beside the stream: feed at most
				// onlineSpeed times real time, as a live stream would
				// give the learner time (unpaced, a loaded machine could
				// end the recording before the first pass finishes).
				ahead := time.Duration(float64(b.End()-rec.blocks[0].First)/rec.rate/onlineSpeed*1e9) - time.Since(start)
				if ahead > 0 {
					time.Sleep(ahead)
				}
			}
		}
		out = s.Flush(out)
		return out, s.Templates()
	}
	if passes == 2 {
		cfg.Deterministic = true
		// Pass 1 as cmd/spikeline's learnConfig sets it up for recordings
		// this small: 3000 snippets per channel, re-learning at most 40 s
		// apart.
		learn := cfg
		learn.MaxSnippets, learn.RelearnEvery = 3000, 40
		_, tm := run(learn)
		cfg.Templates = tm
		// Pass 2 keeps pass 1's templates (tracked, not re-learned).
		cfg.RelearnEvery = -1
	}
	out, _ := run(cfg)
	return out
}

// onlineSpeed is the most times real time the online run is fed.
const onlineSpeed = 20

type bar struct {
	meanAcc5  float64 // mean accuracy over units with SNR >= 5
	wellFrac5 float64 // fraction of them well detected
}

// checkAccuracy sorts and scores rec, checks it against want and returns
// what it measured.
func checkAccuracy(t *testing.T, name string, rec *recording, passes int, want bar) bar {
	t.Helper()
	spikes := sortRecording(t, rec, sort.Config{}, passes)
	gt := rec.gt
	from := uint64(0)
	if passes == 1 {
		// Online, spikes before a channel's templates are learned leave as
		// unit 0; score the steady state after the first sorted spike.
		i := slices.IndexFunc(spikes, func(s sort.Spike) bool { return s.Unit != 0 })
		if i < 0 {
			t.Fatalf("%s: no spike was ever sorted", name)
		}
		from = spikes[i].Sample
		t.Logf("%s: first sorted spike at %.1f s", name, float64(from)/rec.rate)
		after := func(s sort.Spike) bool { return s.Sample < from }
		gt = slices.DeleteFunc(slices.Clone(gt), after)
		spikes = slices.DeleteFunc(spikes, after)
	}
	c, err := score.Compare(gt, spikes, rec.rate, score.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	c.WriteReport(&buf, rec.snr)
	t.Logf("%s (%d channels, %.0f s, %d passes, scored from %.1f s): %d ground-truth spikes, %d sorted spikes\n%s",
		name, rec.chans, float64(len(rec.blocks)*rec.blocks[0].Len())/rec.rate, passes, float64(from)/rec.rate, len(gt), len(spikes), buf.String())
	s := c.Summary(rec.snr)
	if s.Units == 0 {
		t.Fatalf("%s: no ground-truth unit with SNR >= 5", name)
	}
	frac := float64(s.WellDetected) / float64(s.Units)
	if s.MeanAccuracy < want.meanAcc5 || frac < want.wellFrac5 {
		t.Errorf("%s: mean accuracy (SNR>=5) %.3f, well detected %d/%d = %.2f; want >= %.2f and >= %.2f",
			name, s.MeanAccuracy, s.WellDetected, s.Units, frac, want.meanAcc5, want.wellFrac5)
	}
	return bar{s.MeanAccuracy, frac}
}

// clean is the default test recording: spike-band noise only.
func clean(channels int, seconds float64, seed int64) sim.Config {
	return sim.Config{
		Channels: channels, Seed: seed, Duration: uint64(seconds * 30000),
		MinUnits: 1, MaxUnits: 3,
		NoLFP: true, NoMains: true, NoDC: true, NoArtifacts: true,
	}
}

// The bars below sit a margin under what the sorter meets today (see
// docs/sorting.md): the two-pass runs are deterministic (clean 0.945 with
// 14/15 well detected, LFP 0.900 with 18/20), the margin absorbs
// behaviour-preserving sorter changes that round differently; the online
// run learns beside the stream, paced at 20x real time (0.949–0.950 with
// 15/16), and keeps a wider margin. The project target is
// 0.90 / 0.90 and TestAccuracyLong checks it.
var (
	barClean  = bar{0.90, 0.86}
	barLFP    = bar{0.85, 0.85}
	barOnline = bar{0.85, 0.80}
	// barSeeds is for the full-size recordings of TestAccuracyLongSeeds
	// (worst today: 0.929 mean accuracy on seed 10, 53/59 = 89.8% well
	// detected on seed 11).
	barSeeds = bar{0.90, 0.86}
)

func TestAccuracyClean(t *testing.T) {
	rec := simulate(t, clean(10, 40, 1))
	checkAccuracy(t, "clean", rec, 2, barClean)
}

func TestAccuracyLFPDCMains(t *testing.T) {
	cfg := clean(10, 40, 2)
	cfg.NoLFP, cfg.NoMains, cfg.NoDC = false, false, false
	rec := simulate(t, cfg)
	checkAccuracy(t, "lfp+dc+mains", rec, 2, barLFP)
}

func TestAccuracyOnline(t *testing.T) {
	rec := simulate(t, clean(10, 40, 3))
	checkAccuracy(t, "online (1 pass)", rec, 1, barOnline)
}

// TestAccuracyLong is the full-size run: 32 channels, 1–3 units each,
// 5 minutes, LFP, DC offsets, mains and movement artifacts, against the
// project target. Run with SPIKELINE_LONG=1.
func TestAccuracyLong(t *testing.T) {
	if os.Getenv("SPIKELINE_LONG") == "" {
		t.Skip("set SPIKELINE_LONG=1 for the full-size accuracy run")
	}
	cfg := sim.Config{Channels: 32, Seed: 7, Duration: 300 * 30000, MinUnits: 1, MaxUnits: 3}
	rec := simulate(t, cfg)
	checkAccuracy(t, "long", rec, 2, bar{0.90, 0.90})
}

// TestAccuracyLongSeeds sorts four more full-size recordings (seeds 8–11,
// same settings as TestAccuracyLong) against barSeeds, a margin under the
// worst of them today (docs/sorting.md: 0.929–0.952 mean accuracy, 90–96%
// well detected), so a change that helps seed 7 and hurts the others is
// caught. It logs which recordings meet the project target. Run with
// SPIKELINE_LONG=1 (about a minute); SPIKELINE_LONG_SEEDS picks other
// seeds (12–16 were held out from tuning).
func TestAccuracyLongSeeds(t *testing.T) {
	if os.Getenv("SPIKELINE_LONG") == "" {
		t.Skip("set SPIKELINE_LONG=1 for the full-size accuracy runs")
	}
	seeds := []int64{8, 9, 10, 11}
	if v := os.Getenv("SPIKELINE_LONG_SEEDS"); v != "" {
		// Other recordings, e.g. held out from tuning: SPIKELINE_LONG_SEEDS=12,13,14.
		seeds = nil
		for _, f := range strings.Split(v, ",") {
			seed, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				t.Fatalf("SPIKELINE_LONG_SEEDS %q: %v", v, err)
			}
			seeds = append(seeds, seed)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			cfg := sim.Config{Channels: 32, Seed: seed, Duration: 300 * 30000, MinUnits: 1, MaxUnits: 3}
			rec := simulate(t, cfg)
			got := checkAccuracy(t, fmt.Sprintf("long seed %d", seed), rec, 2, barSeeds)
			t.Logf("seed %d: mean accuracy %.3f, well detected %.0f%%; project target (0.90, 90%%) met: %v",
				seed, got.meanAcc5, 100*got.wellFrac5, got.meanAcc5 >= 0.90 && got.wellFrac5 >= 0.90)
		})
	}
}
