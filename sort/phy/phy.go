package phy

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/quality"
)

// Recording describes the raw file Phy reads waveforms from.
type Recording struct {
	DatPath    string  // raw file; written to params.py as an absolute path
	Channels   int     // channels in the raw file (n_channels_dat)
	Rate       float64 // sample rate, Hz
	Dtype      string  // NumPy dtype of the raw samples ("int16" when empty)
	Offset     int64   // header bytes before the first sample
	HPFiltered bool    // the raw file is already high-pass filtered

	// Positions are the channel positions in µm (x, y), one per channel.
	// When nil, channels are placed on a vertical line 20 µm apart.
	Positions [][2]float64

	// Samples is the recording's length in samples per channel, the
	// duration the quality metrics are measured over (0: one past the
	// last spike).
	Samples uint64
}

// Options tune Write. The zero value is usable.
type Options struct {
	// Units are the quality metrics and labels of the sort's units
	// (quality.Params.Sorting over the same spikes, templates and noise);
	// nil: Write computes them with Quality.
	Units []quality.Unit
	// Quality are the metric parameters and the label rule when Write
	// computes the metrics (zero: SpikeInterface's defaults,
	// docs/quality.md).
	Quality quality.Params
}

// Cluster is what Write reports about one exported unit.
type Cluster struct {
	ID       int32 // cluster id = sort unit id
	Template int   // row of templates.npy
	Channel  int32 // template channel (-1 if the unit had no template)
	quality.Metrics
	Label quality.Label // good or mua (cluster_KSLabel.tsv, cluster_group.tsv)
}

// Write writes a Phy template-gui folder in dir (created if needed) from
// spikes (any order; unit 0, the unsorted spikes, is left out), the
// templates of the sorted units and the per-channel noise σ in µV (may be
// nil). Cluster ids are the sort's unit ids, and template i is the unit
// with the i-th smallest id. Beside the arrays it writes the cluster
// labels and metrics as Kilosort does (cluster_KSLabel.tsv,
// cluster_group.tsv, cluster_ContamPct.tsv, cluster_Amplitude.tsv) and
// the other quality metrics as SpikeInterface's export_to_phy does (one
// cluster_<metric>.tsv each). It returns one Cluster per exported unit.
func Write(dir string, rec Recording, spikes []sort.Spike, templates []sort.Template, noise []float32, opts Options) ([]Cluster, error) {
	if rec.Channels <= 0 {
		return nil, fmt.Errorf("phy: %d channels, want > 0", rec.Channels)
	}
	if !(rec.Rate > 0) {
		return nil, fmt.Errorf("phy: sample rate %g, want > 0", rec.Rate)
	}
	if rec.Positions != nil && len(rec.Positions) != rec.Channels {
		return nil, fmt.Errorf("phy: %d channel positions for %d channels", len(rec.Positions), rec.Channels)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("phy: %w", err)
	}

	// Spikes of sorted units in time order (Phy requires increasing times).
	sp := make([]sort.Spike, 0, len(spikes))
	for _, s := range spikes {
		if s.Unit == 0 {
			continue
		}
		if s.Channel < 0 || int(s.Channel) >= rec.Channels {
			return nil, fmt.Errorf("phy: spike at sample %d of unit %d on channel %d, recording has %d", s.Sample, s.Unit, s.Channel, rec.Channels)
		}
		sp = append(sp, s)
	}
	slices.SortStableFunc(sp, func(a, b sort.Spike) int { return cmp.Compare(a.Sample, b.Sample) })

	// Units: every unit with spikes or a template.
	tmpl := map[int32]sort.Template{}
	for _, t := range templates {
		if t.Unit == 0 {
			continue
		}
		if t.Channel < 0 || int(t.Channel) >= rec.Channels {
			return nil, fmt.Errorf("phy: template of unit %d on channel %d, recording has %d", t.Unit, t.Channel, rec.Channels)
		}
		if t.Pre < 0 || t.Pre >= len(t.Waveform) {
			return nil, fmt.Errorf("phy: template of unit %d: Pre %d outside its %d samples", t.Unit, t.Pre, len(t.Waveform))
		}
		if len(t.Channels) > 0 {
			if len(t.Footprint) != len(t.Channels)*len(t.Waveform) {
				return nil, fmt.Errorf("phy: template of unit %d: %d footprint samples for %d channels of %d samples", t.Unit, len(t.Footprint), len(t.Channels), len(t.Waveform))
			}
			for _, c := range t.Channels {
				if c < 0 || int(c) >= rec.Channels {
					return nil, fmt.Errorf("phy: template of unit %d spans channel %d, recording has %d", t.Unit, c, rec.Channels)
				}
			}
		}
		tmpl[t.Unit] = t
	}
	count := map[int32]int{}
	for _, s := range sp {
		count[s.Unit]++
	}
	var ids []int32
	for u := range count {
		ids = append(ids, u)
	}
	for u := range tmpl {
		if _, ok := count[u]; !ok {
			ids = append(ids, u)
		}
	}
	slices.Sort(ids)
	row := make(map[int32]int, len(ids))
	for i, u := range ids {
		row[u] = i
	}

	// Dense templates (n_templates, n_samples, n_channels), all aligned on
	// the same extremum sample.
	pre, post := 0, 0
	for _, t := range tmpl {
		pre = max(pre, t.Pre)
		post = max(post, len(t.Waveform)-t.Pre-1)
	}
	nt, ns, nc := len(ids), pre+post+1, rec.Channels
	// writeDense writes them one template at a time (the whole array is
	// nt·ns·nc floats: 120 MB for 874 units on 384 channels).
	writeDense := func(w io.Writer) error {
		h, err := header(Descr[float32](), []int{nt, ns, nc})
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(w, 1<<16)
		bw.Write(h)
		one := make([]float32, ns*nc)
		var buf []byte
		for _, u := range ids {
			clear(one)
			if t, ok := tmpl[u]; ok {
				for _, cw := range footprint(t) {
					for k, v := range cw.w {
						one[(pre-t.Pre+k)*nc+int(cw.ch)] = v
					}
				}
			}
			buf = writeLE(bw, one, buf)
		}
		return bw.Flush()
	}

	// Per-spike arrays.
	times := make([]int64, len(sp))
	clusters := make([]int32, len(sp))
	tIndex := make([]int32, len(sp))
	amps := make([]float32, len(sp))
	for i, s := range sp {
		times[i] = int64(s.Sample)
		clusters[i] = s.Unit
		tIndex[i] = int32(row[s.Unit])
		amps[i] = float32(math.Abs(float64(s.Amplitude)))
	}

	// Channels.
	chanMap := make([]int32, nc)
	pos := make([]float32, 0, 2*nc)
	for c := range nc {
		chanMap[c] = int32(c)
		if rec.Positions != nil {
			pos = append(pos, float32(rec.Positions[c][0]), float32(rec.Positions[c][1]))
		} else {
			pos = append(pos, 0, float32(20*c))
		}
	}

	write := func(name string, f func(*os.File) error) error {
		p := filepath.Join(dir, name)
		fh, err := device.CreateFile(p) // never through a symbolic link
		if err != nil {
			return fmt.Errorf("phy: %w", err)
		}
		if err := f(fh); err != nil {
			fh.Close()
			return fmt.Errorf("phy: %s: %w", p, err)
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("phy: %w", err)
		}
		return nil
	}
	n := len(sp)
	steps := []struct {
		name string
		f    func(*os.File) error
	}{
		{"spike_times.npy", func(w *os.File) error { return WriteNPY(w, []int{n}, times) }},
		{"spike_clusters.npy", func(w *os.File) error { return WriteNPY(w, []int{n}, clusters) }},
		{"spike_templates.npy", func(w *os.File) error { return WriteNPY(w, []int{n}, tIndex) }},
		{"amplitudes.npy", func(w *os.File) error { return WriteNPY(w, []int{n}, amps) }},
		{"templates.npy", func(w *os.File) error { return writeDense(w) }},
		{"similar_templates.npy", func(w *os.File) error {
			return WriteNPY(w, []int{nt, nt}, similarity(ids, tmpl))
		}},
		{"channel_map.npy", func(w *os.File) error { return WriteNPY(w, []int{nc}, chanMap) }},
		{"channel_positions.npy", func(w *os.File) error { return WriteNPY(w, []int{nc, 2}, pos) }},
		{"whitening_mat.npy", func(w *os.File) error { return writeIdentity(w, nc) }},
		{"whitening_mat_inv.npy", func(w *os.File) error { return writeIdentity(w, nc) }},
	}
	// The files are independent: written on all cores.
	errs := make([]error, len(steps))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(steps)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(steps); i = int(next.Add(1) - 1) {
				errs[i] = write(steps[i].name, steps[i].f)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	// Cluster labels and quality metrics.
	units := opts.Units
	if units == nil {
		samples := rec.Samples
		if samples == 0 && len(sp) > 0 {
			samples = sp[len(sp)-1].Sample + 1
		}
		var err error
		if units, err = opts.Quality.Sorting(sp, templates, noise, samples, rec.Rate); err != nil {
			return nil, fmt.Errorf("phy: %w", err)
		}
	}
	byID := make(map[int32]quality.Unit, len(units))
	for _, u := range units {
		byID[u.ID] = u
	}
	out := make([]Cluster, len(ids))
	for i, u := range ids {
		q, ok := byID[u]
		if !ok {
			return nil, fmt.Errorf("phy: no quality metrics for unit %d", u)
		}
		c := Cluster{ID: u, Template: i, Channel: -1, Metrics: q.Metrics, Label: q.Label}
		if t, ok := tmpl[u]; ok {
			c.Channel = t.Channel
		}
		out[i] = c
	}
	for _, f := range clusterFiles {
		if err := write(f.name, func(fh *os.File) error {
			bw := bufio.NewWriter(fh)
			fmt.Fprintf(bw, "cluster_id\t%s\n", f.column)
			for _, c := range out {
				fmt.Fprintf(bw, "%d\t%s\n", c.ID, f.value(c))
			}
			return bw.Flush()
		}); err != nil {
			return nil, err
		}
	}

	if err := write("params.py", func(f *os.File) error {
		_, err := f.WriteString(Params(rec))
		return err
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// clusterFiles are the cluster_*.tsv files Write writes. Phy shows every
// column of every cluster_*.tsv in its cluster view, and takes the groups
// from the "group" column of cluster_group.tsv.
var clusterFiles = []struct {
	name, column string
	value        func(Cluster) string
}{
	// As Kilosort (kilosort/io.py save_to_phy; utils/rezToPhy.m in 2.5).
	{"cluster_KSLabel.tsv", "KSLabel", func(c Cluster) string { return c.Label.String() }},
	{"cluster_group.tsv", "group", func(c Cluster) string { return c.Label.String() }},
	{"cluster_ContamPct.tsv", "ContamPct", func(c Cluster) string {
		// Kilosort 2.5 writes an undefined contamination as 100 %.
		if math.IsNaN(c.RPContamination) {
			return "100.0"
		}
		return strconv.FormatFloat(100*c.RPContamination, 'f', 1, 64)
	}},
	{"cluster_Amplitude.tsv", "Amplitude", func(c Cluster) string {
		if math.IsNaN(c.AmplitudeMedian) {
			return "nan"
		}
		return strconv.FormatFloat(math.Abs(c.AmplitudeMedian), 'f', 1, 64)
	}},
	// As SpikeInterface's export_to_phy (exporters/to_phy.py): one file
	// per metric but num_spikes and firing_rate, which Phy computes;
	// undefined values are empty.
	{"cluster_presence_ratio.tsv", "presence_ratio", func(c Cluster) string { return tsvFloat(c.PresenceRatio) }},
	{"cluster_snr.tsv", "snr", func(c Cluster) string { return tsvFloat(c.SNR) }},
	{"cluster_isi_violations_ratio.tsv", "isi_violations_ratio", func(c Cluster) string { return tsvFloat(c.ISIViolationsRatio) }},
	{"cluster_isi_violations_count.tsv", "isi_violations_count", func(c Cluster) string { return strconv.Itoa(c.ISIViolationsCount) }},
	{"cluster_rp_contamination.tsv", "rp_contamination", func(c Cluster) string { return tsvFloat(c.RPContamination) }},
	{"cluster_rp_violations.tsv", "rp_violations", func(c Cluster) string { return strconv.Itoa(c.RPViolations) }},
	{"cluster_amplitude_cutoff.tsv", "amplitude_cutoff", func(c Cluster) string { return tsvFloat(c.AmplitudeCutoff) }},
	{"cluster_amplitude_median.tsv", "amplitude_median", func(c Cluster) string { return tsvFloat(c.AmplitudeMedian) }},
}

// tsvFloat formats v as pandas' to_csv does for a float column: the
// shortest representation, NaN as an empty field.
func tsvFloat(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// Params returns the text of Phy's params.py for rec.
func Params(rec Recording) string {
	dat := rec.DatPath
	if dat != "" {
		if a, err := filepath.Abs(dat); err == nil {
			dat = a
		}
	}
	dtype := rec.Dtype
	if dtype == "" {
		dtype = "int16"
	}
	hp := "False"
	if rec.HPFiltered {
		hp = "True"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dat_path = %s\n", pyString(dat))
	fmt.Fprintf(&b, "n_channels_dat = %d\n", rec.Channels)
	fmt.Fprintf(&b, "dtype = %s\n", pyString(dtype))
	fmt.Fprintf(&b, "offset = %d\n", rec.Offset)
	fmt.Fprintf(&b, "sample_rate = %s\n", strconv.FormatFloat(rec.Rate, 'f', -1, 64)+pyFloatSuffix(rec.Rate))
	fmt.Fprintf(&b, "hp_filtered = %s\n", hp)
	return b.String()
}

func pyFloatSuffix(v float64) string {
	if v == math.Trunc(v) {
		return "."
	}
	return ""
}

// pyString quotes s as a Python string literal.
func pyString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// chanWave is a template's waveform on one channel.
type chanWave struct {
	ch int32
	w  []float32
}

// footprint returns t's waveforms channel by channel: its main channel
// only, or with probe geometry every channel it spans (Template.Channels).
func footprint(t sort.Template) []chanWave {
	if len(t.Channels) == 0 {
		return []chanWave{{t.Channel, t.Waveform}}
	}
	n := len(t.Waveform)
	out := make([]chanWave, len(t.Channels))
	for j, c := range t.Channels {
		out[j] = chanWave{c, t.Footprint[j*n : (j+1)*n]}
	}
	return out
}

// similarity is the cosine similarity of the templates of units ids over
// every channel they span, aligned on the extremum: two templates with no
// channel in common score 0.
func similarity(ids []int32, tmpl map[int32]sort.Template) []float32 {
	n := len(ids)
	out := make([]float32, n*n)
	fp := make([][]chanWave, n)
	for i, u := range ids {
		if t, ok := tmpl[u]; ok {
			fp[i] = footprint(t)
		}
	}
	for i, a := range ids {
		if fp[i] == nil {
			continue
		}
		ta := tmpl[a]
		for j := i; j < n; j++ {
			if fp[j] == nil {
				continue
			}
			tb := tmpl[ids[j]]
			var dot, na, nb float64
			shared := false
			for _, ca := range fp[i] {
				var wb []float32
				for _, cb := range fp[j] {
					if cb.ch == ca.ch {
						wb = cb.w
					}
				}
				shared = shared || wb != nil
				for k, va := range ca.w {
					kb := k - ta.Pre + tb.Pre
					if wb == nil || kb < 0 || kb >= len(wb) {
						na += float64(va) * float64(va)
						continue
					}
					dot += float64(va) * float64(wb[kb])
					na += float64(va) * float64(va)
				}
			}
			if !shared {
				continue
			}
			for _, cb := range fp[j] {
				for _, vb := range cb.w {
					nb += float64(vb) * float64(vb)
				}
			}
			if na > 0 && nb > 0 {
				s := float32(dot / math.Sqrt(na*nb))
				out[i*n+j], out[j*n+i] = s, s
			}
		}
	}
	return out
}

// writeIdentity writes the nc×nc float64 identity matrix as NPY, a row at
// a time: at 8192 channels the matrix is 512 MiB, which need not be in
// memory at once.
func writeIdentity(w io.Writer, nc int) error {
	h, err := header(Descr[float64](), []int{nc, nc})
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.Write(h)
	row := make([]float64, nc)
	var buf []byte
	for c := range nc {
		row[c] = 1
		buf = writeLE(bw, row, buf)
		row[c] = 0
	}
	return bw.Flush()
}
