package device

import (
	"encoding/binary"
	"fmt"
)

// The commands of version 2 (docs/protocol.md, "Commands of version 2"):
//
//	op 8  set_mode        u8 mode, 3 reserved                          4 bytes
//	op 9  set_thresholds  u8 level, u8 σ tenths, u16 n, n × i16         4 + 2n bytes
//	op 10 set_snippet     u8 pre, u8 post, u8 flags (bit 0: no snippet
//	                      samples), u8 reserved                          4 bytes
//	op 11 set_features    u16 bin samples, u8 levels, u8 count bits      4 bytes

// payloadSizeV2 returns the payload size of a version-2 command.
func (c *Command) payloadSizeV2() (int, bool) {
	switch c.Op {
	case OpSetMode, OpSetSnippet, OpSetFeatures:
		return commandFixed + 4, true
	case OpSetThresholds:
		if len(c.Thresholds) > MaxCommandChannels {
			panic(fmt.Sprintf("device: set_thresholds with %d thresholds", len(c.Thresholds)))
		}
		return commandFixed + 4 + 2*len(c.Thresholds), true
	}
	return 0, false
}

// putV2 writes the arguments of a version-2 command into a.
func (c *Command) putV2(a []byte) {
	le := binary.LittleEndian
	switch c.Op {
	case OpSetMode:
		a[0], a[1], a[2], a[3] = byte(c.Mode), 0, 0, 0
	case OpSetThresholds:
		a[0], a[1] = c.Level, c.Tenths
		le.PutUint16(a[2:], uint16(len(c.Thresholds)))
		for i, t := range c.Thresholds {
			le.PutUint16(a[4+2*i:], uint16(t))
		}
	case OpSetSnippet:
		var f byte
		if c.NoSnippets {
			f = 1
		}
		a[0], a[1], a[2], a[3] = c.Pre, c.Post, f, 0
	case OpSetFeatures:
		le.PutUint16(a, c.BinSamples)
		a[2], a[3] = c.Levels, c.CountBits
	}
}

// parseV2 decodes the arguments a of a version-2 command into c and
// returns the argument length its op needs (-1: not an op of version 2).
func (c *Command) parseV2(a []byte) (int, error) {
	le := binary.LittleEndian
	switch c.Op {
	case OpSetMode:
		if len(a) == 4 {
			c.Mode = Mode(a[0])
		}
		return 4, nil
	case OpSetThresholds:
		if len(a) < 4 {
			return 4, nil
		}
		n := int(le.Uint16(a[2:]))
		if len(a) == 4+2*n {
			c.Level, c.Tenths = a[0], a[1]
			c.Thresholds = make([]int16, n)
			for i := range c.Thresholds {
				c.Thresholds[i] = int16(le.Uint16(a[4+2*i:]))
			}
		}
		return 4 + 2*n, nil
	case OpSetSnippet:
		if len(a) == 4 {
			c.Pre, c.Post, c.NoSnippets = a[0], a[1], a[2]&1 != 0
		}
		return 4, nil
	case OpSetFeatures:
		if len(a) == 4 {
			c.BinSamples, c.Levels, c.CountBits = le.Uint16(a), a[2], a[3]
		}
		return 4, nil
	}
	return -1, nil
}

// Apply changes settings s as command c asks, for a device with
// channels enabled channels, and reports what is wrong with c if it
// cannot be applied (s is then unchanged). Modes, thresholds, snippets
// and features are checked as a device must: a mode it does not know, a
// threshold list that is not one per enabled channel, a level beyond the
// levels counted, snippets beyond MaxSnippetSide or shorter after the
// extremum than the search for it, an empty bin, 0 or more than
// MaxLevels levels, counts of other than 2, 4 or 8 bits. Changing the
// number of levels keeps the thresholds of the levels kept and turns
// new ones off. The dead time follows Post (it is never shorter).
func (s *Settings) Apply(c Command, channels int) error {
	n := *s
	switch c.Op {
	case OpSetMode:
		if c.Mode > ModeFeatures {
			return fmt.Errorf("unknown mode %d", c.Mode)
		}
		n.Mode = c.Mode
	case OpSetThresholds:
		if int(c.Level) >= s.Levels {
			return fmt.Errorf("threshold level %d, the device counts levels 0..%d", c.Level, s.Levels-1)
		}
		if len(c.Thresholds) != channels {
			return fmt.Errorf("%d thresholds for %d enabled channels", len(c.Thresholds), channels)
		}
		n.Thresholds = append([][]int16(nil), s.Thresholds...)
		n.Thresholds[c.Level] = append([]int16(nil), c.Thresholds...)
		n.SigmaTenths[c.Level] = c.Tenths
	case OpSetSnippet:
		n.Pre, n.Post, n.Snippets = int(c.Pre), int(c.Post), !c.NoSnippets
		if n.Post < n.Align {
			return fmt.Errorf("post %d is shorter than the %d-sample search for the extremum", n.Post, n.Align)
		}
		n.Dead = max(n.Dead, n.Post)
	case OpSetFeatures:
		n.BinSamples, n.Levels, n.CountBits = int(c.BinSamples), int(c.Levels), int(c.CountBits)
		if n.Levels >= 1 && n.Levels <= MaxLevels {
			n.Thresholds = make([][]int16, n.Levels)
			for l := range n.Thresholds {
				if l < len(s.Thresholds) {
					n.Thresholds[l] = s.Thresholds[l]
				} else {
					n.Thresholds[l] = make([]int16, channels)
					n.SigmaTenths[l] = 0
				}
			}
		}
	default:
		return fmt.Errorf("%s is not a settings command", c.Op)
	}
	if err := n.check(); err != nil {
		return err
	}
	*s = n
	return nil
}
