package sim

import (
	"strconv"

	"github.com/spikeline/spikeline/sort"
)

type sortSpike = sort.Spike

func itoa(i int) string { return strconv.Itoa(i) }
