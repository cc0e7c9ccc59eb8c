//go:build !linux

package sim

import (
	"context"
	"errors"
)

// ServePTY is only implemented on Linux; elsewhere use ServeTCP.
func (e *Emulator) ServePTY(ctx context.Context, link string, ready func(tty string)) error {
	return errors.New("sim: the pseudo-terminal transport is only implemented on Linux; use TCP")
}
