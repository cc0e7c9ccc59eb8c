package sim

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestTransposeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ C, c0, k, n int }{
		{1, 0, 1, 4}, {4, 0, 4, 8}, {6, 1, 5, 12}, {37, 3, 32, 16}, {1024, 992, 32, 544}, {7, 0, 7, 10}, {33, 0, 33, 4},
	} {
		scratch := make([]int16, tc.k*tc.n)
		for i := range scratch {
			scratch[i] = int16(r.Uint32())
		}
		want := make([]int16, tc.C*tc.n)
		got := make([]int16, tc.C*tc.n)
		for i := range want {
			want[i] = int16(i)
			got[i] = int16(i)
		}
		transposeRef(want, scratch, tc.C, tc.c0, tc.k, tc.n)
		transpose(got, scratch, tc.C, tc.c0, tc.k, tc.n)
		if !slices.Equal(got, want) {
			t.Errorf("%+v: transpose differs from the reference", tc)
		}
	}
}

func TestMixSaturates(t *testing.T) {
	dst := make([]int16, 4)
	a := []int16{32000, -32000, 100, 0}
	b := []int16{32000, -32000, 100, 0}
	slow := []int32{1 << 22, -(1 << 22), 0, 7}
	mix(dst, a, b, slow, 8, 4)
	want := []int16{32767, -32768, (200 + 8) >> 4, (7 + 8) >> 4}
	if !slices.Equal(dst, want) {
		t.Errorf("mix = %v, want %v", dst, want)
	}
}

func TestDrawSpikesCarriesOver(t *testing.T) {
	dst := make([]int16, 10)
	tm := []float32{1, 2, 3, 4, 5}
	jobs := drawSpikes(dst, []render{{start: 7, tmpl: tm, scale: 2}, {start: -2, tmpl: tm, scale: 1}, {start: 0, tmpl: []float32{40000}, scale: 1}})
	want := []int16{32767, 4, 5, 0, 0, 0, 0, 2, 4, 6}
	if !slices.Equal(dst, want) {
		t.Errorf("dst = %v, want %v", dst, want)
	}
	if len(jobs) != 1 || jobs[0].start != -3 {
		t.Fatalf("carried jobs %+v, want one starting at -3", jobs)
	}
	next := make([]int16, 10)
	drawSpikes(next, jobs)
	if !slices.Equal(next[:3], []int16{8, 10, 0}) {
		t.Errorf("next chunk starts %v, want [8 10 0]", next[:3])
	}
}
