package score

import "math"

// Assign solves the linear assignment problem: it pairs rows with columns
// of the cost matrix (len(cost) rows, each of the same length) so that
// every row or every column (whichever are fewer) is used exactly once and
// the total cost is minimal. It returns, for each row, the assigned column,
// or -1 for rows left out when there are more rows than columns.
//
// It is the Hungarian method with potentials (Kuhn–Munkres, O(n²m) for n
// ≤ m). Costs must be finite (use a large finite cost for forbidden pairs). Assign panics if the rows have different lengths.
func Assign(cost [][]float64) []int {
	n := len(cost)
	if n == 0 {
		return nil
	}
	m := len(cost[0])
	for _, r := range cost {
		if len(r) != m {
			panic("score: Assign: ragged cost matrix")
		}
	}
	rowOf := make([]int, n)
	for i := range rowOf {
		rowOf[i] = -1
	}
	if m == 0 {
		return rowOf
	}
	if n <= m {
		colOf := hungarian(n, m, func(i, j int) float64 { return cost[i][j] })
		copy(rowOf, colOf)
		return rowOf
	}
	// More rows than columns: solve the transpose.
	rowForCol := hungarian(m, n, func(i, j int) float64 { return cost[j][i] })
	for j, i := range rowForCol {
		rowOf[i] = j
	}
	return rowOf
}

// hungarian assigns each of n rows a distinct column among m >= n,
// minimising the sum of c(i, j). It returns the column of each row.
func hungarian(n, m int, c func(i, j int) float64) []int {
	// 1-based arrays; p[j] is the row matched to column j (0 = none).
	u := make([]float64, n+1)
	v := make([]float64, m+1)
	p := make([]int, m+1)
	way := make([]int, m+1)
	minv := make([]float64, m+1)
	used := make([]bool, m+1)
	for i := 1; i <= n; i++ {
		p[0] = i
		j0 := 0
		for j := range minv {
			minv[j] = math.Inf(1)
			used[j] = false
		}
		for {
			used[j0] = true
			i0 := p[j0]
			delta := math.Inf(1)
			j1 := -1
			for j := 1; j <= m; j++ {
				if used[j] {
					continue
				}
				cur := c(i0-1, j-1) - u[i0] - v[j]
				if cur < minv[j] {
					minv[j] = cur
					way[j] = j0
				}
				if minv[j] < delta {
					delta = minv[j]
					j1 = j
				}
			}
			if j1 < 0 { // only possible with +Inf costs everywhere
				j1 = firstUnused(used)
				way[j1] = j0
				delta = 0
			}
			for j := 0; j <= m; j++ {
				if used[j] {
					u[p[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		for j0 != 0 {
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	col := make([]int, n)
	for j := 1; j <= m; j++ {
		if p[j] != 0 {
			col[p[j]-1] = j - 1
		}
	}
	return col
}

func firstUnused(used []bool) int {
	for j := 1; j < len(used); j++ {
		if !used[j] {
			return j
		}
	}
	return 0
}
