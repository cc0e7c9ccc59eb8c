package shard

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
)

// This file is the shard protocol: subjects, headers and the JSON control
// messages between a rig and its shards (docs/scale-out.md).

// Protocol is the version of the JSON control messages; a message of
// another version is refused.
const Protocol = 1

// Headers carried by raw blocks and by a shard's output.
const (
	// HeaderSeq is the message's sequence number in its stream: per
	// group for raw blocks (from 1 at the rig's start), per lease for a
	// shard's spike batches and templates (from 1 at the lease's start).
	HeaderSeq = "Spikeline-Seq"
	// HeaderLease is the lease (epoch) a shard's output belongs to.
	HeaderLease = "Spikeline-Lease"
	// HeaderShard names the shard that sorted a batch.
	HeaderShard = "Spikeline-Shard"
	// HeaderLost lists device sample ranges of a spike batch whose raw
	// samples never reached the shard: "from-to[,from-to...]".
	HeaderLost = "Spikeline-Lost"
	// HeaderEnd marks the empty raw block that ends a group's stream: the
	// shard flushes its sorter and sends its last batch.
	HeaderEnd = "Spikeline-End"
)

// Subjects are the shard protocol's subjects of one rig, under
// spikeline.<rig>.shard (besides the raw groups, spikeline.<rig>.raw.<group>).
type Subjects struct {
	rig, base string
}

// NewSubjects returns the shard subjects of rig.
func NewSubjects(rig string) (Subjects, error) {
	if err := schema.ValidToken(rig); err != nil {
		return Subjects{}, fmt.Errorf("shard: rig: %w", err)
	}
	return Subjects{rig: rig, base: schema.Prefix + "." + rig + "."}, nil
}

// Rig returns the rig name.
func (s Subjects) Rig() string { return s.rig }

// Raw is spikeline.<rig>.raw.<group>: the group's raw blocks, from the rig.
func (s Subjects) Raw(group string) string { return s.base + "raw." + group }

// Plan is spikeline.<rig>.shard.plan: the rig's assignment table (JSON),
// several times a second.
func (s Subjects) Plan() string { return s.base + "shard.plan" }

// Lease is spikeline.<rig>.shard.lease: a shard's request for the details
// of a lease the plan gave it (request/reply, JSON).
func (s Subjects) Lease() string { return s.base + "shard.lease" }

// Beat is spikeline.<rig>.shard.beat: every shard's heartbeat (JSON).
func (s Subjects) Beat() string { return s.base + "shard.beat" }

// Nak is spikeline.<rig>.shard.nak: a shard asking the rig to send raw
// blocks again (JSON).
func (s Subjects) Nak() string { return s.base + "shard.nak" }

// Resend is spikeline.<rig>.shard.resend.<group>: raw blocks sent again
// after a Nak.
func (s Subjects) Resend(group string) string { return s.base + "shard.resend." + group }

// Ask is spikeline.<rig>.shard.ask.<shard>: the rig asking a shard to send
// a lease's output again from a sequence number (JSON).
func (s Subjects) Ask(shard string) string { return s.base + "shard.ask." + shard }

// Output is spikeline.<rig>.shard.out.<group>: a shard's output for the
// group, in order: spike batches (spikes schema) and, when learning
// changed them, the group's templates (templates schema, full snapshots).
func (s Subjects) Output(group string) string { return s.base + "shard.out." + group }

// Group is a channel group: the unit of work a shard takes. Its channels
// are [First, First+Channels) of the rig's stream.
type Group struct {
	Name     string `json:"group"`
	First    int    `json:"first_channel"`
	Channels int    `json:"channels"`
}

// GroupName returns the name of the i-th group: g0, g1, ...
func GroupName(i int) string { return "g" + strconv.Itoa(i) }

// Split cuts channels into groups of size channels (the last may be
// smaller), named g0, g1, ...
func Split(channels, size int) ([]Group, error) {
	if channels <= 0 {
		return nil, fmt.Errorf("shard: %d channels", channels)
	}
	if size <= 0 {
		return nil, fmt.Errorf("shard: groups of %d channels (want > 0)", size)
	}
	var gs []Group
	for c := 0; c < channels; c += size {
		gs = append(gs, Group{Name: GroupName(len(gs)), First: c, Channels: min(size, channels-c)})
	}
	return gs, nil
}

// PlanLease is a lease in the plan: shard Shard sorts the group under
// epoch Epoch.
type PlanLease struct {
	Shard string `json:"shard"`
	Epoch uint64 `json:"epoch"`
}

// PlanGroup is one group of the plan and its current leases: usually one;
// two while the group moves to another shard (the newer takes over once it
// has caught up).
type PlanGroup struct {
	Group
	Leases []PlanLease `json:"leases"`
}

// Plan is the assignment table the rig publishes. A shard sorts the
// groups whose leases name it and stops a lease the plan no longer lists.
type Plan struct {
	V   int    `json:"v"`
	Rig string `json:"rig"`
	// Session identifies the rig's run: leases of another session end.
	Session string      `json:"session"`
	Seq     uint64      `json:"seq"`
	Groups  []PlanGroup `json:"groups"`
}

// LeaseRequest asks the rig for the details of a lease.
type LeaseRequest struct {
	V       int    `json:"v"`
	Session string `json:"session"`
	Shard   string `json:"shard"`
	Group   string `json:"group"`
	Epoch   uint64 `json:"epoch"`
}

// Lease is what a shard needs to sort a group: the rig's sorter
// configuration and, for a group that moves, the group's last templates
// (channels relative to the group, unit ids the rig's).
type Lease struct {
	V       int    `json:"v"`
	Session string `json:"session"`
	Epoch   uint64 `json:"epoch"`
	Group
	// FromSeq is the raw sequence number to start from: 1 for the first
	// lease of a session, which must sort every block (missing ones are
	// asked for again); 0 for a lease that starts where it joins, after
	// a warm-up.
	FromSeq uint64      `json:"from_seq"`
	Sort    sort.Config `json:"sort"`
	// Error, when set, refuses the lease (stale epoch, unknown group).
	Error string `json:"error,omitempty"`
}

// LeaseStatus is a shard's report on one of its leases.
type LeaseStatus struct {
	Group string `json:"group"`
	Epoch uint64 `json:"epoch"`
	// Ready: subscribed to the group's raw blocks.
	Ready bool `json:"ready"`
	// Seq is the last output sequence number published; End the end of
	// the last spike batch.
	Seq uint64 `json:"seq"`
	End uint64 `json:"end"`
	// NoiseUV is each channel's noise σ (0 before the first estimate).
	NoiseUV []float32 `json:"noise_uv,omitempty"`
}

// Beat is a shard's heartbeat.
type Beat struct {
	V     int    `json:"v"`
	Shard string `json:"shard"`
	Host  string `json:"host,omitempty"`
	PID   int    `json:"pid,omitempty"`
	// Capacity is the most groups the shard takes (0: no limit).
	Capacity int `json:"capacity,omitempty"`
	// Leaving: the shard is stopping; its groups should move (it keeps
	// sorting until they have).
	Leaving bool          `json:"leaving,omitempty"`
	Leases  []LeaseStatus `json:"leases"`
	// Samples sorted (per channel, summed over leases), and the time
	// spent sorting them, since the shard started: the per-shard cost.
	Samples uint64 `json:"samples"`
	BusyNS  int64  `json:"busy_ns"`
	// HopP50NS and HopP99NS: latency from the rig publishing a raw block
	// to the shard receiving it, over the blocks since the last beat
	// (host clocks: meaningful on one machine or with synchronised clocks).
	HopP50NS int64 `json:"hop_p50_ns,omitempty"`
	HopP99NS int64 `json:"hop_p99_ns,omitempty"`
}

// Nak asks the rig to send the raw blocks of Group with sequence numbers
// [From, To) again, on the group's resend subject.
type Nak struct {
	V     int    `json:"v"`
	Group string `json:"group"`
	From  uint64 `json:"from"`
	To    uint64 `json:"to"`
}

// Ask asks a shard to send the output of a lease again from sequence
// number From.
type Ask struct {
	V     int    `json:"v"`
	Group string `json:"group"`
	Epoch uint64 `json:"epoch"`
	From  uint64 `json:"from"`
}

// ErrProtocol reports a control message that is not a valid message of
// this protocol version.
var ErrProtocol = errors.New("shard: bad protocol message")

// decodeJSON decodes a control message, refusing unknown fields and other
// versions.
func decodeJSON(data []byte, v any, version func() int) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %T: %v", ErrProtocol, v, err)
	}
	if got := version(); got != Protocol {
		return fmt.Errorf("%w: %T version %d, this shard protocol is %d", ErrProtocol, v, got, Protocol)
	}
	return nil
}

// Range is a run of device samples [From, To).
type Range struct{ From, To uint64 }

// FormatRanges writes ranges as the HeaderLost value.
func FormatRanges(rs []Range) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(r.From, 10))
		b.WriteByte('-')
		b.WriteString(strconv.FormatUint(r.To, 10))
	}
	return b.String()
}

// ParseRanges reads a HeaderLost value.
func ParseRanges(s string) ([]Range, error) {
	if s == "" {
		return nil, nil
	}
	var rs []Range
	for _, p := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(p, "-")
		from, err1 := strconv.ParseUint(a, 10, 64)
		to, err2 := strconv.ParseUint(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || to < from {
			return nil, fmt.Errorf("%w: lost range %q", ErrProtocol, p)
		}
		rs = append(rs, Range{from, to})
	}
	return rs, nil
}
