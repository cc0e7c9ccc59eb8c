package sort

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkScipy runs, in the same benchmark run, the scipy sosfilt +
// numpy threshold pipeline (bench_scipy/pipeline.py) on the same data as
// the Go sorter and reports both throughputs and their ratio. It needs
// /usr/bin/python3 with scipy (Debian's python3-scipy) and skips without.
//
//	go test ./sort -run XXX -bench Scipy -benchtime 3x
func BenchmarkScipy(b *testing.B) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import scipy.signal").Run(); err != nil {
		b.Skipf("%s with scipy not available: %v", python, err)
	}
	for _, ch := range benchChannels {
		b.Run(fmt.Sprintf("ch=%d", ch), func(b *testing.B) {
			d := getBenchData(b, ch)
			rows := int(d.rate) // 1 s
			data := d.samples[:rows*ch]
			path := filepath.Join(b.TempDir(), "data.i16")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := binary.Write(f, binary.LittleEndian, data); err != nil {
				b.Fatal(err)
			}
			f.Close()
			// Go: the whole sorter (more work than the scipy pipeline:
			// alignment, matching, subtraction, tracking too).
			so, _ := warmSorter(b, d, Config{}, 300)
			defer so.Close()
			blocks := d.blocks(300)[:rows/300]
			first := blocks[len(blocks)-1].End()
			out := make([]Spike, 0, 4096)
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				for _, blk := range blocks {
					blk.First = first
					first = blk.End()
					out, _ = so.Process(blk, out[:0])
				}
			}
			goSec := b.Elapsed().Seconds() / float64(b.N)
			goCPU := (cpuTime() - cpu0).Seconds() / float64(b.N)
			b.StopTimer()
			cmd := exec.Command(python, "bench_scipy/pipeline.py", path, fmt.Sprint(ch), fmt.Sprint(d.rate), fmt.Sprint(d.gain), "3")
			cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=2", "OPENBLAS_NUM_THREADS=2")
			outp, err := cmd.Output()
			if err != nil {
				b.Fatalf("scipy pipeline: %v", err)
			}
			var pySec float64
			var pySamples, crossings int
			if _, err := fmt.Sscan(strings.TrimSpace(string(outp)), &pySec, &pySamples, &crossings); err != nil {
				b.Fatalf("scipy pipeline output %q: %v", outp, err)
			}
			b.ReportMetric(float64(len(data))/goSec, "go-samples/s")
			b.ReportMetric(float64(len(data))/goCPU, "go-samples/cpu-s")
			b.ReportMetric(float64(pySamples)/pySec, "scipy-samples/s")
			b.ReportMetric(pySec/goSec, "go/scipy-speed")
		})
	}
}
