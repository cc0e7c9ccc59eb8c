package phy

import (
	"bufio"
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/sort"
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
}

// Options tune Write. The zero value is usable.
type Options struct {
	// RefractoryMs is the refractory period used to label clusters: a
	// cluster is "good" when at most MaxViolations of its inter-spike
	// intervals are shorter, "mua" otherwise (1.5 ms, 0.01).
	RefractoryMs  float64
	MaxViolations float64
	// MinSpikes is the fewest spikes of a "good" cluster (50).
	MinSpikes int
}

// Cluster is what Write reports about one exported unit.
type Cluster struct {
	ID         int32   // cluster id = sort unit id
	Template   int     // row of templates.npy
	Channel    int32   // template channel (-1 if the unit had no template)
	Spikes     int     // spike count
	Violations float64 // fraction of inter-spike intervals under the refractory period
	SNR        float64 // |template peak| / channel noise (0 when unknown)
	Group      string  // "good" or "mua"
}

// Write writes a Phy template-gui folder in dir (created if needed) from
// spikes (any order; unit 0, the unsorted spikes, is left out), the
// templates of the sorted units and the per-channel noise σ in µV (may be
// nil). Cluster ids are the sort's unit ids, and template i is the unit
// with the i-th smallest id. It returns one Cluster per exported unit.
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
	if opts.RefractoryMs <= 0 {
		opts.RefractoryMs = 1.5
	}
	if opts.MaxViolations <= 0 {
		opts.MaxViolations = 0.01
	}
	if opts.MinSpikes <= 0 {
		opts.MinSpikes = 50
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
	dense := make([]float32, nt*ns*nc)
	for u, t := range tmpl {
		base := row[u] * ns * nc
		for k, v := range t.Waveform {
			dense[base+(pre-t.Pre+k)*nc+int(t.Channel)] = v
		}
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
	eye := make([]float64, nc*nc)
	for c := range nc {
		eye[c*nc+c] = 1
	}

	write := func(name string, f func(*os.File) error) error {
		p := filepath.Join(dir, name)
		fh, err := os.Create(p)
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
		{"templates.npy", func(w *os.File) error { return WriteNPY(w, []int{nt, ns, nc}, dense) }},
		{"similar_templates.npy", func(w *os.File) error {
			return WriteNPY(w, []int{nt, nt}, similarity(ids, tmpl))
		}},
		{"channel_map.npy", func(w *os.File) error { return WriteNPY(w, []int{nc}, chanMap) }},
		{"channel_positions.npy", func(w *os.File) error { return WriteNPY(w, []int{nc, 2}, pos) }},
		{"whitening_mat.npy", func(w *os.File) error { return WriteNPY(w, []int{nc, nc}, eye) }},
		{"whitening_mat_inv.npy", func(w *os.File) error { return WriteNPY(w, []int{nc, nc}, eye) }},
	}
	for _, s := range steps {
		if err := write(s.name, s.f); err != nil {
			return nil, err
		}
	}

	// Cluster labels from refractory-period violations.
	refr := uint64(math.Round(opts.RefractoryMs / 1000 * rec.Rate))
	last := map[int32]uint64{}
	viol := map[int32]int{}
	for _, s := range sp {
		if l, ok := last[s.Unit]; ok && s.Sample-l < refr {
			viol[s.Unit]++
		}
		last[s.Unit] = s.Sample
	}
	out := make([]Cluster, len(ids))
	for i, u := range ids {
		c := Cluster{ID: u, Template: i, Channel: -1, Spikes: count[u], Group: "mua"}
		if t, ok := tmpl[u]; ok {
			c.Channel = t.Channel
			if noise != nil && int(t.Channel) < len(noise) && noise[t.Channel] > 0 {
				c.SNR = math.Abs(float64(t.PeakUV)) / float64(noise[t.Channel])
			}
		}
		if c.Spikes > 1 {
			c.Violations = float64(viol[u]) / float64(c.Spikes-1)
		}
		if c.Spikes >= opts.MinSpikes && c.Violations <= opts.MaxViolations {
			c.Group = "good"
		}
		out[i] = c
	}

	tsv := func(name, col string, val func(Cluster) string) error {
		return write(name, func(f *os.File) error {
			bw := bufio.NewWriter(f)
			fmt.Fprintf(bw, "cluster_id\t%s\n", col)
			for _, c := range out {
				fmt.Fprintf(bw, "%d\t%s\n", c.ID, val(c))
			}
			return bw.Flush()
		})
	}
	if err := tsv("cluster_group.tsv", "group", func(c Cluster) string { return c.Group }); err != nil {
		return nil, err
	}
	if err := tsv("cluster_snr.tsv", "snr", func(c Cluster) string { return strconv.FormatFloat(c.SNR, 'f', 2, 64) }); err != nil {
		return nil, err
	}
	if err := tsv("cluster_isi_violations.tsv", "isi_viol", func(c Cluster) string { return strconv.FormatFloat(c.Violations, 'f', 4, 64) }); err != nil {
		return nil, err
	}

	if err := write("params.py", func(f *os.File) error {
		_, err := f.WriteString(Params(rec))
		return err
	}); err != nil {
		return nil, err
	}
	return out, nil
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

// similarity is the cosine similarity of the templates of units ids: two
// templates on different channels score 0 (templates are single-channel).
func similarity(ids []int32, tmpl map[int32]sort.Template) []float32 {
	n := len(ids)
	out := make([]float32, n*n)
	for i, a := range ids {
		ta, ok := tmpl[a]
		if !ok {
			continue
		}
		for j := i; j < n; j++ {
			tb, ok := tmpl[ids[j]]
			if !ok || tb.Channel != ta.Channel {
				continue
			}
			// Align on the extremum sample.
			var dot, na, nb float64
			for k, va := range ta.Waveform {
				kb := k - ta.Pre + tb.Pre
				if kb < 0 || kb >= len(tb.Waveform) {
					na += float64(va) * float64(va)
					continue
				}
				vb := tb.Waveform[kb]
				dot += float64(va) * float64(vb)
				na += float64(va) * float64(va)
			}
			for _, vb := range tb.Waveform {
				nb += float64(vb) * float64(vb)
			}
			if na > 0 && nb > 0 {
				s := float32(dot / math.Sqrt(na*nb))
				out[i*n+j], out[j*n+i] = s, s
			}
		}
	}
	return out
}
