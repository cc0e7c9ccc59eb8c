package sim

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMix4MatchesMix(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		C, c0, n int
		big      bool
	}{
		{4, 0, 1, false}, {4, 0, 37, false}, {10, 3, 64, false}, {1024, 1020, 544, false}, {6, 2, 100, true},
	} {
		var in [4]mixInput
		shared := tc.C == 1024 // all four channels in one group
		for k := range in {
			if shared && k > 0 {
				in[k] = in[0]
				in[k].dc = int32(k * 100)
				continue
			}
			in[k] = mixInput{a: make([]int16, tc.n), b: make([]int16, tc.n), slow: make([]int32, tc.n), dc: int32(r.IntN(2000)) - 1000}
			for i := 0; i < tc.n; i++ {
				in[k].a[i] = int16(r.IntN(2000) - 1000)
				in[k].b[i] = int16(r.IntN(2000) - 1000)
				in[k].slow[i] = int32(r.IntN(4000) - 2000)
				if tc.big {
					in[k].slow[i] *= 30 // saturates
				}
			}
		}
		want := make([]int16, tc.C*tc.n)
		got := make([]int16, tc.C*tc.n)
		for i := range want {
			want[i] = int16(i)
			got[i] = int16(i)
		}
		for k := range in {
			dst := make([]int16, tc.n)
			mix(dst, in[k].a, in[k].b, in[k].slow, in[k].dc)
			for i, v := range dst {
				want[i*tc.C+tc.c0+k] = v
			}
		}
		mix4(got, tc.C, tc.c0, &in, tc.big)
		if !slices.Equal(got, want) {
			t.Errorf("%+v: mix4 differs from mix", tc)
		}
	}
}

func TestMixSaturates(t *testing.T) {
	dst := make([]int16, 4)
	a := []int16{32000, -32000, 100, 0}
	b := []int16{32000, -32000, 100, 0}
	slow := []int32{1 << 22, -(1 << 22), 0, 7}
	mix(dst, a, b, slow, 8)
	want := []int16{32767, -32768, 208, 15}
	if !slices.Equal(dst, want) {
		t.Errorf("mix = %v, want %v", dst, want)
	}
}

func TestDrawSpikesCarriesOver(t *testing.T) {
	const C, ch, n = 3, 1, 10
	out := make([]int16, C*n)
	tm := []float32{1, 2, 3, 4, 5}
	jobs := drawSpikes(out, C, ch, n, []render{{start: 7, tmpl: tm, scale: 2}, {start: -2, tmpl: tm, scale: 1}, {start: 0, tmpl: []float32{40000}, scale: 1}})
	want := []int16{32767, 4, 5, 0, 0, 0, 0, 2, 4, 6}
	for i, w := range want {
		if out[i*C+ch] != w || out[i*C] != 0 || out[i*C+2] != 0 {
			t.Fatalf("sample %d: channel %d = %d, want %d (others untouched)", i, ch, out[i*C+ch], w)
		}
	}
	if len(jobs) != 1 || jobs[0].start != -3 {
		t.Fatalf("carried jobs %+v, want one starting at -3", jobs)
	}
	next := make([]int16, C*n)
	drawSpikes(next, C, ch, n, jobs)
	if next[0*C+ch] != 8 || next[1*C+ch] != 10 || next[2*C+ch] != 0 {
		t.Errorf("next chunk starts %v, want 8 10 0", []int16{next[ch], next[C+ch], next[2*C+ch]})
	}
}
