package score

import (
	"math"
	"math/rand/v2"
	"testing"
)

func assignCost(cost [][]float64, rowOf []int) float64 {
	var s float64
	for i, j := range rowOf {
		if j >= 0 {
			s += cost[i][j]
		}
	}
	return s
}

// bruteAssign returns the minimal total cost over all assignments that use
// min(n, m) pairs.
func bruteAssign(cost [][]float64) float64 {
	n, m := len(cost), len(cost[0])
	best := math.Inf(1)
	usedCol := make([]bool, m)
	usedRow := make([]bool, n)
	k := min(n, m)
	var rec func(depth int, start int, sum float64)
	// choose k rows (in order) and a distinct column for each
	rec = func(depth, start int, sum float64) {
		if depth == k {
			best = min(best, sum)
			return
		}
		for i := start; i < n; i++ {
			if usedRow[i] {
				continue
			}
			usedRow[i] = true
			for j := 0; j < m; j++ {
				if !usedCol[j] {
					usedCol[j] = true
					rec(depth+1, i+1, sum+cost[i][j])
					usedCol[j] = false
				}
			}
			usedRow[i] = false
		}
	}
	rec(0, 0, 0)
	return best
}

func TestAssignKnown(t *testing.T) {
	tests := []struct {
		name string
		cost [][]float64
		want []int
	}{
		{"identity", [][]float64{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}}, []int{0, 1, 2}},
		{"anti", [][]float64{{1, 1, 0}, {1, 0, 1}, {0, 1, 1}}, []int{2, 1, 0}},
		// Classic example: optimum 4+2+... rows pick (0,1),(1,0),(2,2) = 1+2+2 = 5.
		{"classic", [][]float64{{4, 1, 3}, {2, 0, 5}, {3, 2, 2}}, []int{1, 0, 2}},
		// Greedy (row 0 takes its best column 0) is not optimal here.
		{"greedy-trap", [][]float64{{-0.9, -0.8}, {-0.7, 0}}, []int{1, 0}},
		{"wide", [][]float64{{5, 1, 9, 9}, {1, 5, 9, 9}}, []int{1, 0}},
		{"tall", [][]float64{{5, 1}, {1, 5}, {9, 9}}, []int{1, 0, -1}},
		{"single", [][]float64{{3}}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Assign(tt.cost)
			if len(got) != len(tt.want) {
				t.Fatalf("Assign = %v, want %v", got, tt.want)
			}
			if c, w := assignCost(tt.cost, got), assignCost(tt.cost, tt.want); math.Abs(c-w) > 1e-12 {
				t.Fatalf("Assign = %v (cost %g), want %v (cost %g)", got, c, tt.want, w)
			}
		})
	}
	if got := Assign(nil); got != nil {
		t.Errorf("Assign(nil) = %v", got)
	}
	if got := Assign([][]float64{{}, {}}); got[0] != -1 || got[1] != -1 {
		t.Errorf("Assign(2x0) = %v, want [-1 -1]", got)
	}
}

func TestAssignRandomAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		n, m := 1+r.IntN(6), 1+r.IntN(6)
		cost := make([][]float64, n)
		for i := range cost {
			cost[i] = make([]float64, m)
			for j := range cost[i] {
				if trial%3 == 0 {
					cost[i][j] = float64(r.IntN(4)) // many ties
				} else {
					cost[i][j] = r.NormFloat64()
				}
			}
		}
		got := Assign(cost)
		used := map[int]bool{}
		pairs := 0
		for _, j := range got {
			if j < 0 {
				continue
			}
			if used[j] {
				t.Fatalf("trial %d: column %d used twice: %v", trial, j, got)
			}
			used[j] = true
			pairs++
		}
		if pairs != min(n, m) {
			t.Fatalf("trial %d: %d pairs, want %d", trial, pairs, min(n, m))
		}
		if c, w := assignCost(cost, got), bruteAssign(cost); math.Abs(c-w) > 1e-9 {
			t.Fatalf("trial %d (%dx%d): cost %g, brute force %g", trial, n, m, c, w)
		}
	}
}

func BenchmarkAssign100(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	cost := make([][]float64, 100)
	for i := range cost {
		cost[i] = make([]float64, 100)
		for j := range cost[i] {
			cost[i][j] = r.Float64()
		}
	}
	for b.Loop() {
		Assign(cost)
	}
}
