package offline

import (
	"context"
	"io"

	"github.com/spikeline/spikeline/device"
)

// AheadDepth is how many blocks ReadAhead reads ahead; AheadBuffers how
// many Samples buffers the source must cycle through (device.RawConfig
// Buffers) so that none is overwritten while in use: the caller's block,
// those waiting, and the one being read.
const (
	AheadDepth   = 2
	AheadBuffers = AheadDepth + 2
)

// Ahead is a device.Source that reads another one's blocks on a goroutine
// of its own, a few blocks ahead of the caller, so that reading and
// decoding a file overlap with sorting it.
type Ahead struct {
	ch     chan aheadBlock
	cancel context.CancelFunc
}

type aheadBlock struct {
	b   device.Block
	err error
}

// ReadAhead starts reading src, whose blocks' Samples must stay valid for
// AheadBuffers calls of its Next (a source that allocates every block's
// samples, or a device.RawSource with RawConfig.Buffers >= AheadBuffers).
// The caller is done with a block when it calls Next again, and calls
// Stop before closing src.
func ReadAhead(ctx context.Context, src device.Source) *Ahead {
	ctx, cancel := context.WithCancel(ctx)
	a := &Ahead{ch: make(chan aheadBlock, AheadDepth), cancel: cancel}
	go func() {
		defer close(a.ch)
		for {
			b, err := src.Next(ctx)
			select {
			case a.ch <- aheadBlock{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return a
}

// Next returns the next block or the source's error (io.EOF at its end,
// or after Stop).
func (a *Ahead) Next(ctx context.Context) (device.Block, error) {
	select {
	case r, ok := <-a.ch:
		if !ok {
			return device.Block{}, io.EOF
		}
		return r.b, r.err
	case <-ctx.Done():
		return device.Block{}, ctx.Err()
	}
}

// Stop ends the reading goroutine and waits for it.
func (a *Ahead) Stop() {
	a.cancel()
	for range a.ch {
	}
}
