package plots

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spikeline/spikeline/sim"
)

func TestSimulation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sim.png")
	if err := Simulation(path, sim.Config{Channels: 3, Seed: 1, MinUnits: 1, MaxUnits: 2}, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 300 {
		t.Errorf("image %v too small", b)
	}
	if err := Simulation(path, sim.Config{Channels: 3}, 0); err == nil {
		t.Error("zero duration accepted")
	}
}
