package score

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// DefaultBands are the SNR band edges Summary uses when given none:
// <3, 3–5, 5–8, 8–12, ≥12.
var DefaultBands = []float64{3, 5, 8, 12}

// Band is the score of the ground-truth units whose SNR is in [Lo, Hi).
type Band struct {
	Lo, Hi        float64 // SNR range; Lo may be -Inf, Hi +Inf
	Units         int     // ground-truth units in the band
	WellDetected  int     // of which well detected
	MeanAccuracy  float64 // mean over the band's units (0 when empty)
	MeanRecall    float64
	MeanPrecision float64
}

// Summary is a comparison summarised by SNR.
type Summary struct {
	Bands []Band // in ascending SNR; units without an SNR are left out

	// Over units with SNR >= MinSNR (5 unless SummaryAbove says otherwise).
	MinSNR       float64
	Units        int     // units with SNR >= MinSNR
	WellDetected int     // of which well detected
	MeanAccuracy float64 // mean accuracy over them (0 when none)

	// Over all ground-truth units, SNR known or not.
	AllUnits        int
	AllWellDetected int
	AllMeanAccuracy float64
}

// Summary groups ground-truth units by SNR (ids to SNR; units missing from
// snr are counted only in the All fields) into DefaultBands and summarises
// units with SNR >= 5.
func (c *Comparison) Summary(snr map[int32]float64) Summary {
	return c.SummaryAbove(snr, DefaultBands, 5)
}

// SummaryAbove is Summary with explicit band edges (ascending) and
// minimum SNR for the headline numbers.
func (c *Comparison) SummaryAbove(snr map[int32]float64, edges []float64, minSNR float64) Summary {
	s := Summary{MinSNR: minSNR}
	lo := math.Inf(-1)
	for i := 0; i <= len(edges); i++ {
		hi := math.Inf(1)
		if i < len(edges) {
			hi = edges[i]
		}
		s.Bands = append(s.Bands, Band{Lo: lo, Hi: hi})
		lo = hi
	}
	var accSum, allSum float64
	for _, u := range c.Units {
		s.AllUnits++
		allSum += u.Accuracy
		if u.WellDetected {
			s.AllWellDetected++
		}
		v, ok := snr[u.GT]
		if !ok || math.IsNaN(v) {
			continue
		}
		for i := range s.Bands {
			b := &s.Bands[i]
			if v >= b.Lo && v < b.Hi {
				b.Units++
				b.MeanAccuracy += u.Accuracy
				b.MeanRecall += u.Recall
				b.MeanPrecision += u.Precision
				if u.WellDetected {
					b.WellDetected++
				}
				break
			}
		}
		if v >= minSNR {
			s.Units++
			accSum += u.Accuracy
			if u.WellDetected {
				s.WellDetected++
			}
		}
	}
	for i := range s.Bands {
		b := &s.Bands[i]
		if b.Units > 0 {
			n := float64(b.Units)
			b.MeanAccuracy /= n
			b.MeanRecall /= n
			b.MeanPrecision /= n
		}
	}
	if s.Units > 0 {
		s.MeanAccuracy = accSum / float64(s.Units)
	}
	if s.AllUnits > 0 {
		s.AllMeanAccuracy = allSum / float64(s.AllUnits)
	}
	return s
}

func bandName(b Band) string {
	switch {
	case math.IsInf(b.Lo, -1) && math.IsInf(b.Hi, 1):
		return "all"
	case math.IsInf(b.Lo, -1):
		return fmt.Sprintf("<%g", b.Hi)
	case math.IsInf(b.Hi, 1):
		return fmt.Sprintf(">=%g", b.Lo)
	}
	return fmt.Sprintf("%g-%g", b.Lo, b.Hi)
}

func fmtSNR(snr map[int32]float64, id int32) string {
	if v, ok := snr[id]; ok {
		return fmt.Sprintf("%.1f", v)
	}
	return "-"
}

// WriteReport writes the comparison as text: one line per ground-truth
// unit, the accuracy by SNR band, the sorted-unit categories and, last,
// machine-readable key=value summary lines:
//
//	mean_accuracy_snr5=0.934
//	well_detected_snr5=18/20
//	mean_accuracy_all=0.870
//	well_detected_all=22/26
//	num_gt=26 num_sorted=27 num_well_detected=22 num_redundant=1 num_overmerged=0 num_false_positive=2 num_bad=3
//
// snr may be nil (no SNR column, no bands).
func (c *Comparison) WriteReport(w io.Writer, snr map[int32]float64) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# ground truth vs sorted: delta %.2f ms (%d samples at %g Hz), match score %.2f, well detected >= %.2f\n",
		c.Options.DeltaTime, c.DeltaFrames, c.Rate, c.Options.MatchScore, c.Options.WellDetectedScore)
	fmt.Fprintf(bw, "%7s %4s %6s %7s %7s %4s %7s %7s %7s %7s %7s %9s %6s %6s %6s %6s %6s %6s %6s\n",
		"gt_unit", "ch", "snr", "n_gt", "sorted", "ch", "n_sort", "tp", "fn", "fp", "agree", "accuracy", "recall", "prec", "fdr", "lag",
		"fn_cl", "fn_uns", "fn_mis")
	for _, u := range c.Units {
		sorted, sch := "-", "-"
		if u.Paired {
			sorted = fmt.Sprint(u.Sorted)
			sch = fmt.Sprint(u.SortedChannel)
		}
		fmt.Fprintf(bw, "%7d %4d %6s %7d %7s %4s %7d %7d %7d %7d %7.3f %9.3f %6.3f %6.3f %6.3f %6.1f %6d %6d %6d\n",
			u.GT, u.Channel, fmtSNR(snr, u.GT), u.NumGT, sorted, sch, u.NumSorted, u.TP, u.FN, u.FP,
			u.Agreement, u.Accuracy, u.Recall, u.Precision, u.FalseDiscovery, u.Lag,
			u.Misclassified, u.Unsorted, u.Missed)
	}
	s := c.Summary(snr)
	if len(snr) > 0 {
		fmt.Fprintf(bw, "\n# accuracy by SNR band\n%8s %6s %6s %9s %7s %7s\n", "snr", "units", "well", "accuracy", "recall", "prec")
		for _, b := range s.Bands {
			fmt.Fprintf(bw, "%8s %6d %6d %9.3f %7.3f %7.3f\n", bandName(b), b.Units, b.WellDetected, b.MeanAccuracy, b.MeanRecall, b.MeanPrecision)
		}
	}
	var cl, uns, mis int
	for _, u := range c.Units {
		cl, uns, mis = cl+u.Misclassified, uns+u.Unsorted, mis+u.Missed
	}
	fmt.Fprintf(bw, "\n# false negatives: %d misclassified (another unit's spike), %d unsorted (unit 0), %d missed (not detected)\n", cl, uns, mis)
	fmt.Fprintf(bw, "# sorted units: %d; well detected %v; redundant %v; overmerged %v; false positive %v\n",
		len(c.SortedUnits), c.WellDetected, c.Redundant, c.Overmerged, c.FalsePositive)
	fmt.Fprintf(bw, "mean_accuracy_snr%g=%.3f\n", s.MinSNR, s.MeanAccuracy)
	fmt.Fprintf(bw, "well_detected_snr%g=%d/%d\n", s.MinSNR, s.WellDetected, s.Units)
	fmt.Fprintf(bw, "mean_accuracy_all=%.3f\n", s.AllMeanAccuracy)
	fmt.Fprintf(bw, "well_detected_all=%d/%d\n", s.AllWellDetected, s.AllUnits)
	fmt.Fprintf(bw, "num_gt=%d num_sorted=%d num_well_detected=%d num_redundant=%d num_overmerged=%d num_false_positive=%d num_bad=%d\n",
		len(c.GTUnits), len(c.SortedUnits), len(c.WellDetected), len(c.Redundant), len(c.Overmerged), len(c.FalsePositive), len(c.Bad))
	return bw.Flush()
}

// jsonUnit is one ground-truth unit in WriteJSON's output.
type jsonUnit struct {
	GT             int32    `json:"gt_unit"`
	Channel        int32    `json:"channel"`
	SNR            *float64 `json:"snr,omitempty"`
	NumGT          int      `json:"n_gt"`
	Sorted         *int32   `json:"sorted_unit"` // null when unpaired
	SortedChannel  int32    `json:"sorted_channel"`
	NumSorted      int      `json:"n_sorted"`
	TP             int      `json:"tp"`
	FN             int      `json:"fn"`
	FP             int      `json:"fp"`
	Agreement      float64  `json:"agreement"`
	Accuracy       float64  `json:"accuracy"`
	Recall         float64  `json:"recall"`
	Precision      float64  `json:"precision"`
	FalseDiscovery float64  `json:"false_discovery_rate"`
	MissRate       float64  `json:"miss_rate"`
	Lag            float64  `json:"lag_samples"`
	Misclassified  int      `json:"fn_misclassified"`
	Unsorted       int      `json:"fn_unsorted"`
	Missed         int      `json:"fn_missed"`
	WellDetected   bool     `json:"well_detected"`
}

type jsonBand struct {
	Lo            *float64 `json:"snr_from"` // null: -Inf
	Hi            *float64 `json:"snr_to"`   // null: +Inf
	Units         int      `json:"units"`
	WellDetected  int      `json:"well_detected"`
	MeanAccuracy  float64  `json:"mean_accuracy"`
	MeanRecall    float64  `json:"mean_recall"`
	MeanPrecision float64  `json:"mean_precision"`
}

// WriteJSON writes the comparison as one JSON object: the options, one
// entry per ground-truth unit, the SNR bands, the headline summary over
// SNR >= 5 and the sorted-unit categories. snr may be nil.
func (c *Comparison) WriteJSON(w io.Writer, snr map[int32]float64) error {
	finite := func(v float64) *float64 {
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return nil
		}
		return &v
	}
	s := c.Summary(snr)
	units := make([]jsonUnit, len(c.Units))
	for i, u := range c.Units {
		ju := jsonUnit{GT: u.GT, Channel: u.Channel, NumGT: u.NumGT, SortedChannel: u.SortedChannel,
			NumSorted: u.NumSorted, TP: u.TP, FN: u.FN, FP: u.FP, Agreement: u.Agreement,
			Accuracy: u.Accuracy, Recall: u.Recall, Precision: u.Precision, FalseDiscovery: u.FalseDiscovery,
			MissRate: u.MissRate, Lag: u.Lag, Misclassified: u.Misclassified, Unsorted: u.Unsorted, Missed: u.Missed,
			WellDetected: u.WellDetected}
		if v, ok := snr[u.GT]; ok {
			ju.SNR = finite(v)
		}
		if u.Paired {
			id := u.Sorted
			ju.Sorted = &id
		}
		units[i] = ju
	}
	var bands []jsonBand
	if len(snr) > 0 {
		for _, b := range s.Bands {
			bands = append(bands, jsonBand{finite(b.Lo), finite(b.Hi), b.Units, b.WellDetected, b.MeanAccuracy, b.MeanRecall, b.MeanPrecision})
		}
	}
	ids := func(v []int32) []int32 {
		if v == nil {
			return []int32{}
		}
		return v
	}
	out := map[string]any{
		"delta_ms":     c.Options.DeltaTime,
		"delta_frames": c.DeltaFrames,
		"rate":         c.Rate,
		"match_score":  c.Options.MatchScore,
		"units":        units,
		"bands":        bands,
		"summary": map[string]any{
			"min_snr":           s.MinSNR,
			"units":             s.Units,
			"well_detected":     s.WellDetected,
			"mean_accuracy":     s.MeanAccuracy,
			"all_units":         s.AllUnits,
			"all_well_detected": s.AllWellDetected,
			"all_mean_accuracy": s.AllMeanAccuracy,
		},
		"sorted_units": map[string]any{
			"count":          len(c.SortedUnits),
			"well_detected":  ids(c.WellDetected),
			"redundant":      ids(c.Redundant),
			"overmerged":     ids(c.Overmerged),
			"false_positive": ids(c.FalsePositive),
			"bad":            ids(c.Bad),
		},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
