package rig

import (
	"strings"
	"testing"
)

func TestRedactArgs(t *testing.T) {
	got := strings.Join(redactArgs([]string{"spikeline", "-nats-password", "a", "--nats-token=b", "--nats", "tls://u:p@h:1,nats://x:y@h2:2", "--rig", "r"}), " ")
	want := "spikeline -nats-password REDACTED --nats-token=REDACTED --nats tls://REDACTED@h:1,nats://REDACTED@h2:2 --rig r"
	if got != want {
		t.Errorf("redactArgs = %q\nwant          %q", got, want)
	}
}
