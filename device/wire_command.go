package device

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
)

// Op is the operation a host asks of a device in a command frame.
type Op uint8

// Operations. A device that does not implement one replies StatusUnsupported.
const (
	OpStart       Op = 1 // start streaming data frames
	OpStop        Op = 2 // stop streaming data frames
	OpSetRate     Op = 3 // set the sample rate (Command.Rate, Hz)
	OpSetChannels Op = 4 // set the enabled channels (Command.Channels)
	OpPing        Op = 5 // reply at once, echoing Command.PingTime
	OpStimulate   Op = 6 // deliver a pulse train (Command.Stim)
	OpInfo        Op = 7 // describe the device in Reply.Message

	// Version 2 (wire_command_v2.go): modes and on-device detection.
	OpSetMode       Op = 8  // stream Command.Mode
	OpSetThresholds Op = 9  // set level Command.Level's thresholds (Command.Thresholds)
	OpSetSnippet    Op = 10 // snippet samples (Command.Pre, Command.Post, Command.NoSnippets)
	OpSetFeatures   Op = 11 // feature bins (Command.BinSamples, Command.Levels, Command.CountBits)
)

var opNames = [...]string{
	OpStart:       "start",
	OpStop:        "stop",
	OpSetRate:     "set_rate",
	OpSetChannels: "set_channels",
	OpPing:        "ping",
	OpStimulate:   "stimulate",
	OpInfo:        "info",

	OpSetMode:       "set_mode",
	OpSetThresholds: "set_thresholds",
	OpSetSnippet:    "set_snippet",
	OpSetFeatures:   "set_features",
}

func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Command is a host-to-device request. Seq is chosen by the host and
// echoed in the Reply; which other fields are used depends on Op.
type Command struct {
	Seq      uint32
	Op       Op
	Rate     uint32   // OpSetRate: sample rate in Hz
	Channels []uint16 // OpSetChannels: enabled channels, 0-based, in stream order
	PingTime uint64   // OpPing: opaque host timestamp (e.g. ns), echoed in the Reply
	Stim     Stim     // OpStimulate

	Mode       Mode    // OpSetMode
	Level      uint8   // OpSetThresholds: threshold level, 0..MaxLevels-1 (0: detection's)
	Tenths     uint8   // OpSetThresholds: the σ multiple the thresholds stand for, in tenths (0: not said; Settings.SigmaTenths)
	Thresholds []int16 // OpSetThresholds: one per enabled channel, counts of the band-passed signal (Settings.Thresholds)
	Pre, Post  uint8   // OpSetSnippet: snippet samples before and after the extremum
	NoSnippets bool    // OpSetSnippet: spike events without snippet samples
	BinSamples uint16  // OpSetFeatures: samples per bin
	Levels     uint8   // OpSetFeatures: threshold levels counted, 1..MaxLevels
	CountBits  uint8   // OpSetFeatures: bits per count, 2, 4 or 8
}

// Stim describes a train of current pulses on one electrode.
type Stim struct {
	Channel       uint16  // electrode, 0-based
	Pulses        uint16  // number of pulses in the train
	PhaseUs       uint32  // duration of each phase, µs
	InterphaseUs  uint32  // gap between the two phases of a biphasic pulse, µs
	PeriodUs      uint32  // pulse onset to next pulse onset, µs
	AmplitudeUA   float32 // phase amplitude, µA
	Biphasic      bool    // charge-balanced biphasic pulse (else monophasic)
	CathodicFirst bool    // cathodic (negative) phase first
}

// Stim flag bits on the wire.
const (
	stimBiphasic      = 1 << 0
	stimCathodicFirst = 1 << 1
)

// Command payload sizes.
const (
	commandFixed = 8  // seq u32, op u8, 3 reserved bytes
	stimSize     = 24 // see Stim
	replyFixed   = 32 // see Reply
	// MaxMessage bounds Reply.Message, in bytes.
	MaxMessage = 4096
	// MaxCommandChannels bounds Command.Channels for OpSetChannels.
	MaxCommandChannels = 65535
)

func (c *Command) payloadSize() int {
	switch c.Op {
	case OpSetRate:
		return commandFixed + 4
	case OpSetChannels:
		if len(c.Channels) > MaxCommandChannels {
			panic(fmt.Sprintf("device: command with %d channels", len(c.Channels)))
		}
		return commandFixed + 4 + 2*len(c.Channels)
	case OpPing:
		return commandFixed + 8
	case OpStimulate:
		return commandFixed + stimSize
	}
	if n, ok := c.payloadSizeV2(); ok {
		return n
	}
	return commandFixed
}

// put writes the payload of c into b, which has payloadSize bytes.
func (c *Command) put(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], c.Seq)
	b[4], b[5], b[6], b[7] = byte(c.Op), 0, 0, 0
	a := b[commandFixed:]
	switch c.Op {
	case OpSetRate:
		le.PutUint32(a, c.Rate)
	case OpSetChannels:
		le.PutUint16(a[0:], uint16(len(c.Channels)))
		le.PutUint16(a[2:], 0)
		for i, ch := range c.Channels {
			le.PutUint16(a[4+2*i:], ch)
		}
	case OpPing:
		le.PutUint64(a, c.PingTime)
	case OpStimulate:
		s := &c.Stim
		le.PutUint16(a[0:], s.Channel)
		le.PutUint16(a[2:], s.Pulses)
		le.PutUint32(a[4:], s.PhaseUs)
		le.PutUint32(a[8:], s.InterphaseUs)
		le.PutUint32(a[12:], s.PeriodUs)
		le.PutUint32(a[16:], math.Float32bits(s.AmplitudeUA))
		var f uint16
		if s.Biphasic {
			f |= stimBiphasic
		}
		if s.CathodicFirst {
			f |= stimCathodicFirst
		}
		le.PutUint16(a[20:], f)
		le.PutUint16(a[22:], 0)
	default:
		c.putV2(a)
	}
}

// parseCommand decodes a command payload. Unknown ops decode with only Seq
// and Op set, so a device can reply StatusUnsupported.
func parseCommand(b []byte) (Command, error) {
	var c Command
	if len(b) < commandFixed {
		return c, fmt.Errorf("command payload of %d bytes, want at least %d", len(b), commandFixed)
	}
	le := binary.LittleEndian
	c.Seq = le.Uint32(b)
	c.Op = Op(b[4])
	a := b[commandFixed:]
	want := -1
	switch c.Op {
	case OpStart, OpStop, OpInfo:
		want = 0
	case OpSetRate:
		want = 4
		if len(a) == want {
			c.Rate = le.Uint32(a)
			if c.Rate == 0 {
				return c, fmt.Errorf("set_rate to 0 Hz")
			}
		}
	case OpSetChannels:
		if len(a) >= 4 {
			n := int(le.Uint16(a))
			want = 4 + 2*n
			if len(a) == want {
				c.Channels = make([]uint16, n)
				for i := range c.Channels {
					c.Channels[i] = le.Uint16(a[4+2*i:])
				}
			}
		} else {
			want = 4
		}
	case OpPing:
		want = 8
		if len(a) == want {
			c.PingTime = le.Uint64(a)
		}
	case OpStimulate:
		want = stimSize
		if len(a) == want {
			s := &c.Stim
			s.Channel = le.Uint16(a[0:])
			s.Pulses = le.Uint16(a[2:])
			s.PhaseUs = le.Uint32(a[4:])
			s.InterphaseUs = le.Uint32(a[8:])
			s.PeriodUs = le.Uint32(a[12:])
			s.AmplitudeUA = math.Float32frombits(le.Uint32(a[16:]))
			f := le.Uint16(a[20:])
			s.Biphasic = f&stimBiphasic != 0
			s.CathodicFirst = f&stimCathodicFirst != 0
			if a := float64(s.AmplitudeUA); math.IsNaN(a) || math.IsInf(a, 0) {
				return c, fmt.Errorf("stimulate with amplitude %g µA", a)
			}
		}
	default:
		var err error
		if want, err = c.parseV2(a); err != nil {
			return c, err
		}
	}
	if want >= 0 && len(a) != want {
		return c, fmt.Errorf("%s command with %d argument bytes, want %d", c.Op, len(a), want)
	}
	return c, nil
}

// Status is a device's answer to a command.
type Status uint8

// Statuses.
const (
	StatusOK          Status = 0 // done
	StatusError       Status = 1 // understood but failed; Reply.Message says why
	StatusUnsupported Status = 2 // the device does not implement this Op or argument
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusError:
		return "error"
	case StatusUnsupported:
		return "unsupported"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Reply is a device's answer to a Command: Seq and Op echo the command.
type Reply struct {
	Seq      uint32
	Op       Op
	Status   Status
	PingTime uint64 // OpPing: the command's PingTime, echoed
	Counter  uint64 // the device's sample counter when it replied
	Rate     uint32 // the device's sample rate now, Hz (0 if not streaming-capable)
	Channels uint16 // number of enabled channels now
	Message  string // UTF-8; OpInfo: device description; StatusError: the reason
}

func (r *Reply) put(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], r.Seq)
	b[4] = byte(r.Op)
	b[5] = byte(r.Status)
	le.PutUint16(b[6:], uint16(len(r.Message)))
	le.PutUint64(b[8:], r.PingTime)
	le.PutUint64(b[16:], r.Counter)
	le.PutUint32(b[24:], r.Rate)
	le.PutUint16(b[28:], r.Channels)
	le.PutUint16(b[30:], 0)
	copy(b[replyFixed:], r.Message)
}

func parseReply(b []byte) (Reply, error) {
	var r Reply
	if len(b) < replyFixed {
		return r, fmt.Errorf("reply payload of %d bytes, want at least %d", len(b), replyFixed)
	}
	le := binary.LittleEndian
	r.Seq = le.Uint32(b[0:])
	r.Op = Op(b[4])
	r.Status = Status(b[5])
	n := int(le.Uint16(b[6:]))
	if n > MaxMessage || replyFixed+n != len(b) {
		return r, fmt.Errorf("reply message length %d does not match payload of %d bytes", n, len(b))
	}
	r.PingTime = le.Uint64(b[8:])
	r.Counter = le.Uint64(b[16:])
	r.Rate = le.Uint32(b[24:])
	r.Channels = le.Uint16(b[28:])
	msg := b[replyFixed:]
	if !utf8.Valid(msg) {
		return r, fmt.Errorf("reply message is not UTF-8")
	}
	r.Message = string(msg)
	return r, nil
}
