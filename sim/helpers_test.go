package sim

import (
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/device"

	"github.com/spikeline/spikeline/sort"
)

type sortSpike = sort.Spike

func itoa(i int) string { return strconv.Itoa(i) }

type deviceBlock = device.Block

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
