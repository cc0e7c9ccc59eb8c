package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/plots"
	"github.com/spikeline/spikeline/sort"
)

func init() {
	register(command{
		name:    "decode",
		summary: "fit and evaluate linear decoders (Wiener, Kalman) on sorted spikes and behaviour",
		run:     runDecode,
	})
}

func runDecode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	help := func(w io.Writer) {
		fmt.Fprintln(w, "usage: spikeline decode fit  --spikes S.csv|--features F.spkw --behaviour B.csv [--model wiener|kalman] --out model.json [flags]")
		fmt.Fprintln(w, "       spikeline decode eval --model model.json --spikes S.csv|--features F.spkw --behaviour B.csv [--plot out.png] [flags]")
		fmt.Fprintln(w, "\nRun 'spikeline decode fit -h' or 'spikeline decode eval -h' for the flags. See docs/decoding.md.")
	}
	if len(args) == 0 {
		help(stderr)
		return usageErrorf("decode needs a subcommand: fit or eval")
	}
	switch args[0] {
	case "fit":
		return runDecodeFit(ctx, args[1:], stdout, stderr)
	case "eval":
		return runDecodeEval(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		help(stdout)
		return nil
	default:
		help(stderr)
		return usageErrorf("unknown decode subcommand %q (want fit or eval)", args[0])
	}
}

// decodeInputs are the flags fit and eval share.
type decodeInputs struct {
	spikes, behaviour, meta, gaps string
	rate                          float64
	features                      string // a file of feature frames (decode_features.go)
	feature                       *decode.FeatureFile
}

func (in *decodeInputs) register(fs *flag.FlagSet) {
	fs.StringVar(&in.spikes, "spikes", "", "spikes CSV with header unit_id,sample_index[,channel,…] (spikeline sort's spikes.csv, or gt_spikes.csv)")
	fs.StringVar(&in.behaviour, "behaviour", "", "behaviour CSV with header sample_index,<output>,… (e.g. sample_index,vx,vy)")
	fs.StringVar(&in.behaviour, "behavior", "", "same as --behaviour")
	fs.StringVar(&in.meta, "meta", "", "recording.json sidecar giving the sample rate")
	fs.Float64Var(&in.rate, "rate", 0, "sample rate in Hz (default: from --meta, else 30000)")
	fs.StringVar(&in.gaps, "gaps", "", "optional CSV start_sample,end_sample of samples lost in the neural data (bins overlapping them are excluded)")
	fs.StringVar(&in.features, "features", "", "file of feature frames (spikeline encode --mode features, or a headstage's capture): decode from threshold crossings and spike-band power, alone or with --spikes' sorted units")
}

func (in *decodeInputs) check() error {
	switch {
	case in.spikes == "" && in.features == "":
		return usageErrorf("--spikes or --features is required")
	case in.behaviour == "":
		return usageErrorf("--behaviour is required")
	case in.rate != 0 && in.meta != "":
		return usageErrorf("give either --rate or --meta, not both")
	}
	if in.rate != 0 {
		if err := device.CheckRate("", "--rate", in.rate); err != nil {
			return usageErrorf("%v", err)
		}
	}
	return nil
}

// sampleRate resolves the rate from --rate, --meta, the features or the
// default.
func (in *decodeInputs) sampleRate() (float64, error) {
	if in.feature != nil && in.rate == 0 && in.meta == "" {
		return in.feature.Rate, nil
	}
	if in.rate > 0 {
		return in.rate, nil
	}
	if in.meta != "" {
		m, err := device.ReadMeta(in.meta)
		if err != nil {
			return 0, err
		}
		return m.Rate, nil
	}
	return decode.DefaultRate, nil
}

// load reads the spikes, features, behaviour and gaps files.
func (in *decodeInputs) load() ([]sort.Spike, *decode.Behaviour, []decode.Gap, error) {
	var spikes []sort.Spike
	if in.spikes != "" {
		f, err := os.Open(in.spikes)
		if err != nil {
			return nil, nil, nil, err
		}
		spikes, err = sort.ReadSpikesCSV(f, in.spikes)
		f.Close()
		if err != nil {
			return nil, nil, nil, err
		}
		if len(spikes) == 0 {
			return nil, nil, nil, fmt.Errorf("%s: no spikes", in.spikes)
		}
	}
	if in.feature != nil {
		spikes = append(spikes, in.feature.Records...)
	}
	f, err := os.Open(in.behaviour)
	if err != nil {
		return nil, nil, nil, err
	}
	beh, err := decode.ReadBehaviourCSV(f, in.behaviour)
	f.Close()
	if err != nil {
		return nil, nil, nil, err
	}
	var gaps []decode.Gap
	if in.gaps != "" {
		f, err = os.Open(in.gaps)
		if err != nil {
			return nil, nil, nil, err
		}
		gaps, err = decode.ReadGapsCSV(f, in.gaps)
		f.Close()
		if err != nil {
			return nil, nil, nil, err
		}
	}
	if in.feature != nil {
		gaps = append(gaps, in.feature.Gaps...)
	}
	return spikes, beh, gaps, nil
}

func runDecodeFit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("decode fit", stderr)
	var in decodeInputs
	in.register(fs)
	kind := fs.String("model", "wiener", "decoder: wiener (ridge on lagged counts) or kalman")
	out := fs.String("out", "", "model file to write (JSON)")
	split := fs.Float64("split", 0.7, "fraction of the session (chronological) used for fitting; the rest is held out for eval")
	binMS := fs.Float64("bin-ms", 20, "bin width in ms (rounded to whole samples)")
	lags := fs.Int("lags", decode.DefaultLags, "wiener: causal lags in bins, counting the current one")
	folds := fs.Int("folds", decode.DefaultFolds, "wiener: chronological cross-validation folds for the ridge penalty")
	crossings := fs.Bool("threshold-crossings", false, "decode from all detections per channel (threshold crossings) instead of sorted units")
	featureSet := fs.String("feature-set", "all", "with --features: all (crossings at every level and power), crossings or power; with --spikes too, units and all features")
	unsorted := fs.Bool("with-unsorted", false, "add each channel's unsorted spikes (unit_id 0) as one more column beside the sorted units")
	state := fs.String("state", decode.StateVelocity, "kalman: state layout, velocity or position-velocity")
	steady := fs.Bool("steady", false, "kalman: run with the steady-state gain (Riccati equation iterated to convergence)")
	shrink := fs.Float64("q-shrink", 0, "kalman: shrinkage of the observation noise Q toward its diagonal, 0..1 (0 = units/(units+bins))")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline decode fit --spikes S.csv --behaviour B.csv [--model wiener|kalman] --out model.json [flags]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if err := in.check(); err != nil {
		return err
	}
	switch {
	case in.features != "" && (*crossings || *unsorted):
		return usageErrorf("--features: drop --threshold-crossings and --with-unsorted (the device counted the crossings)")
	case *featureSet != "all" && *featureSet != "crossings" && *featureSet != "power":
		return usageErrorf("--feature-set %q: want all, crossings or power", *featureSet)
	case *featureSet != "all" && (in.features == "" || in.spikes != ""):
		return usageErrorf("--feature-set %s is for --features alone", *featureSet)
	}
	if err := in.loadFeatures(ctx, *binMS); err != nil {
		return err
	}
	cfg := decode.FitConfig{Kind: decode.Kind(*kind), Lags: *lags, Folds: *folds, State: *state, Steady: *steady, Shrink: *shrink}
	switch {
	case *out == "":
		return usageErrorf("--out is required")
	case cfg.Kind != decode.Wiener && cfg.Kind != decode.Kalman:
		return usageErrorf("--model %q: want wiener or kalman", *kind)
	case !(*split > 0 && *split < 1):
		return usageErrorf("--split %g: want a fraction in (0, 1)", *split)
	case !(*binMS > 0) || *binMS > 10000:
		return usageErrorf("--bin-ms %g: want > 0", *binMS)
	case *lags < 1 || *lags > 1000:
		return usageErrorf("--lags %d: want 1..1000", *lags)
	case *crossings && *unsorted:
		return usageErrorf("--threshold-crossings already counts unsorted spikes; drop --with-unsorted")
	case *folds < 2:
		return usageErrorf("--folds %d: want >= 2", *folds)
	case *state != decode.StateVelocity && *state != decode.StatePositionVelocity:
		return usageErrorf("--state %q: want velocity or position-velocity", *state)
	case !(*shrink >= 0 && *shrink <= 1):
		return usageErrorf("--q-shrink %g: want 0..1", *shrink)
	}
	if cfg.Kind == decode.Kalman {
		cfg.Lags = 1
	}
	rate, err := in.sampleRate()
	if err != nil {
		return err
	}
	spikes, beh, gaps, err := in.load()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	g := decode.ByUnit
	switch {
	case *crossings:
		g = decode.ByChannel
	case *unsorted:
		g = decode.ByUnitAndUnsorted
	case in.features != "" && in.spikes != "":
		g = decode.ByUnitAndFeatures
	case in.features != "":
		g = map[string]decode.Grouping{"all": decode.ByFeatures, "crossings": decode.ByCrossings, "power": decode.ByPower}[*featureSet]
	}
	width := decode.BinSamples(*binMS/1000, rate)
	ds, err := decode.NewDataset(spikes, beh, g, nil, rate, width, gaps)
	if err != nil {
		return err
	}
	if len(ds.Bins.Keys) == 0 {
		return fmt.Errorf("%s: no %s to decode from (unsorted spikes have unit_id 0; try --threshold-crossings)", in.spikes, g.Columns())
	}
	m, err := decode.Fit(ds, ds.SplitRow(*split), cfg)
	if err != nil {
		return err
	}
	if err := m.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fitted %s decoder: %d %s, outputs %s, %d-sample bins (%g ms at %g Hz), %d training bins (first %.0f%%: samples %d–%d)\n",
		m.Kind, len(m.Keys), g.Columns(), strings.Join(m.Outputs, ","), m.BinSamples, 1000*m.BinSeconds(), m.Rate, m.Fit.TrainBins, 100*m.Fit.Split, m.Fit.StartSample, m.Fit.SplitSample)
	if m.Wiener != nil {
		fmt.Fprintf(stdout, "lags=%d lambda=%.4g (%.3g per bin; %d-fold chronological CV R² %.4f)\n", m.Lags, m.Wiener.Lambda,
			m.Wiener.Lambda/float64(m.Fit.TrainBins), m.Fit.Folds, bestCV(m.Fit))
	}
	if m.Kalman != nil {
		fmt.Fprintf(stdout, "state=%s steady=%v q_shrink=%.3g\n", m.Kalman.State, m.Kalman.Steady, m.Kalman.Shrink)
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

func bestCV(f *decode.FitInfo) float64 {
	best := math.Inf(-1)
	for _, v := range f.CVR2 {
		best = math.Max(best, v)
	}
	return best
}

func runDecodeEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("decode eval", stderr)
	var in decodeInputs
	in.register(fs)
	modelPath := fs.String("model", "", "model file written by 'spikeline decode fit'")
	split := fs.Float64("split", -1, "score the session after this fraction (default: the model's training split; 0 scores everything)")
	plotPath := fs.String("plot", "", "PNG of true vs decoded traces (default: next to the model, <model>_eval.png; \"none\" for no plot)")
	plotSec := fs.Float64("plot-seconds", 30, "seconds of the held-out part to plot (0: all)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline decode eval --model model.json --spikes S.csv --behaviour B.csv [--plot out.png] [flags]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if err := in.check(); err != nil {
		return err
	}
	switch {
	case *modelPath == "":
		return usageErrorf("--model is required")
	case *split != -1 && !(*split >= 0 && *split < 1):
		return usageErrorf("--split %g: want a fraction in [0, 1)", *split)
	case !(*plotSec >= 0):
		return usageErrorf("--plot-seconds %g: want >= 0", *plotSec)
	}
	m, err := decode.Load(*modelPath)
	if err != nil {
		return err
	}
	if err := in.loadFeatures(ctx, 1000*m.BinSeconds()); err != nil {
		return err
	}
	if in.rate > 0 || in.meta != "" {
		rate, err := in.sampleRate()
		if err != nil {
			return err
		}
		if rate != m.Rate {
			return fmt.Errorf("sample rate %g Hz, but %s was fitted at %g Hz", rate, *modelPath, m.Rate)
		}
	}
	spikes, beh, gaps, err := in.load()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.CheckKeys(decode.SpikeKeys(spikes, m.Grouping)); err != nil {
		return fmt.Errorf("%s vs %s: %w", in.spikes, *modelPath, err)
	}
	ds, err := decode.NewDataset(spikes, beh, m.Grouping, m.Keys, m.Rate, m.BinSamples, gaps)
	if err != nil {
		return err
	}
	from := 0
	switch {
	case *split >= 0:
		from = ds.SplitRow(*split)
	case m.Fit != nil && m.Fit.SplitSample > ds.Bins.Start(0):
		from = int((m.Fit.SplitSample - ds.Bins.Start(0)) / m.BinSamples)
	}
	if from >= ds.Len() {
		return fmt.Errorf("the held-out part (from sample %d) is after the end of %s (sample %d); use --split", ds.Bins.Start(min(from, ds.Len()-1)), in.behaviour, ds.Bins.End(ds.Len()-1))
	}
	ev, err := decode.Evaluate(m, ds, from)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "model %s: %s, %d %s, %g ms bins, lags %d\n", *modelPath, m.Kind, len(m.Keys), m.Grouping.Columns(), 1000*m.BinSeconds(), m.Lags)
	fmt.Fprintf(stdout, "held-out: samples %d–%d (%.1f s), %d bins scored of %d\n", ds.Bins.Start(from), ds.Bins.End(ds.Len()-1),
		float64(ds.Bins.End(ds.Len()-1)-ds.Bins.Start(from))/m.Rate, ev.Bins, ds.Len()-from)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "output\tr2\tcorr")
	for _, s := range ev.Scores {
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\n", s.Output, s.R2, s.Corr)
	}
	tw.Flush()
	if *plotPath != "none" {
		p := *plotPath
		if p == "" {
			p = strings.TrimSuffix(*modelPath, ".json") + "_eval.png"
		}
		if err := plots.Evaluation(p, m, ds, ev, *plotSec); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "plot: %s\n", p)
	}
	fmt.Fprintf(stdout, "mean_r2=%.4f\n", ev.MeanR2)
	return nil
}
