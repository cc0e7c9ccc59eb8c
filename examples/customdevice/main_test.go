package main

import (
	"context"
	"testing"
	"time"
)

// TestRun embeds the rig with the user's device for two seconds of device
// time: it starts, sorts, publishes and stops cleanly.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
}
