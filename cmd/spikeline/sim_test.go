package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

func TestSimCommand(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"sim", "--out", dir, "--channels", "4", "--duration", "1.5", "--seed", "3", "--units", "1-2", "--mains", "50", "--no-lfp"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	m, err := device.ReadMeta(filepath.Join(dir, sim.MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	if m.Channels != 4 || m.Samples != 45000 || m.Seed != 3 {
		t.Errorf("meta %+v", m)
	}
	if !strings.Contains(stderr.String(), "100%") {
		t.Errorf("no final progress line on stderr: %q", stderr.String())
	}
}

func TestSimCommandNoUnits(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"sim", "--out", dir, "--channels", "2", "--duration", "0.2", "--units", "0", "--quiet"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, sim.UnitsFile))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines != 1 {
		t.Errorf("--units 0 wrote %d lines to units.csv, want the header only", lines)
	}
}

func TestSimCommandRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--channels", "4"}, // no --out
		{"--out", dir, "--channels", "0"},
		{"--out", dir, "--units", "3-1"},
		{"--out", dir, "--units", "x"},
		{"--out", dir, "--mains", "55"},
		{"--out", dir, "--duration", "soon"},
		{"--out", dir, "--rate", "10"},
		{"--out", dir, "--behaviour", "dance"},
		{"--out", dir, "--peak", "0-10"},
		{"--out", dir, "extra"},
		{"--out", dir, "--bogus"},
	} {
		var stdout, stderr bytes.Buffer
		if code := realMain(append([]string{"sim"}, args...), &stdout, &stderr); code != 2 {
			t.Errorf("sim %v: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
}

func TestSimServeUnavailable(t *testing.T) {
	old := simServe
	simServe = nil
	defer func() { simServe = old }()
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"sim", "serve"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "not available") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
