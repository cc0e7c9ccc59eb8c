package rig

import (
	"errors"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/device"
)

// failingSync is a segment writer whose Sync fails, as fsync does when
// the disk reports an I/O error.
type failingSync struct{ writes, syncs int }

func (f *failingSync) Write(*device.Block) error { f.writes++; return nil }

func (f *failingSync) Sync() error {
	f.syncs++
	return errors.New("device: fsync rec/recording.dat: input/output error")
}

func (f *failingSync) Close() error { return nil }

// TestRecordSyncError: an fsync error of the recording is returned by the
// reader's recorder, which ends the run with it (exit 1), never ignored.
func TestRecordSyncError(t *testing.T) {
	w := &failingSync{}
	r := &rawRecorder{base: t.TempDir(), seg: 1, w: w}
	b := &device.Block{Rate: 1000, Channels: 2, Gain: 1, Samples: make([]int16, 2*300)}
	var err error
	for i := 0; err == nil && i < 10; i++ {
		b.First = uint64(i * 300)
		err = r.write(b, 1)
	}
	if err == nil || !strings.Contains(err.Error(), "recording: device: fsync rec/recording.dat: input/output error") || w.syncs != 1 || w.writes != 4 {
		t.Fatalf("after %d writes, %d syncs: %v", w.writes, w.syncs, err)
	}
}
