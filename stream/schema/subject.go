package schema

import (
	"errors"
	"fmt"
	"strings"
)

// Prefix is the first token of every spikeline subject.
const Prefix = "spikeline"

// JSONSuffix, appended to a subject, selects the JSON twin of a binary
// message: spikeline.rig1.spikes carries binary batches and
// spikeline.rig1.spikes.json the same batches as JSON documents.
const JSONSuffix = ".json"

// ErrToken reports a rig, model or group name that is not a valid subject
// token.
var ErrToken = errors.New("schema: invalid subject token")

// MaxTokenLen is the longest rig, model or group name accepted.
const MaxTokenLen = 64

// ValidToken reports whether name can be used as a rig, model or group
// name: 1 to MaxTokenLen characters from [A-Za-z0-9_-], and not "json".
// Dots, spaces and the wildcards '*' and '>' would change the meaning of
// a subject, so they are refused.
func ValidToken(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrToken)
	}
	if len(name) > MaxTokenLen {
		return fmt.Errorf("%w: %q is %d bytes, at most %d", ErrToken, name, len(name), MaxTokenLen)
	}
	if name == "json" {
		return fmt.Errorf("%w: %q is reserved for the JSON subject suffix", ErrToken, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return fmt.Errorf("%w: %q has %q at byte %d (allowed: letters, digits, '_', '-')", ErrToken, name, c, i)
		}
	}
	return nil
}

// Subjects builds the subject names of one rig. The zero value is not
// usable; build one with NewSubjects.
type Subjects struct {
	rig                               string
	base                              string // "spikeline.<rig>."
	spikes, status, events, templates string
}

// NewSubjects returns the subjects of rig after validating its name.
func NewSubjects(rig string) (Subjects, error) {
	if err := ValidToken(rig); err != nil {
		return Subjects{}, fmt.Errorf("rig: %w", err)
	}
	base := Prefix + "." + rig + "."
	return Subjects{rig: rig, base: base, spikes: base + "spikes", status: base + "status",
		events: base + "events", templates: base + "templates"}, nil
}

// Rig returns the rig name.
func (s Subjects) Rig() string { return s.rig }

// Spikes is spikeline.<rig>.spikes: batches of sorted spikes, one per block.
func (s Subjects) Spikes() string { return s.spikes }

// Status is spikeline.<rig>.status: periodic link, pipeline and publisher
// health.
func (s Subjects) Status() string { return s.status }

// Events is spikeline.<rig>.events: gaps, CRC bursts, reconnects,
// template changes.
func (s Subjects) Events() string { return s.events }

// Templates is spikeline.<rig>.templates: new and changed unit templates.
func (s Subjects) Templates() string { return s.templates }

// Decode is spikeline.<rig>.decode.<model>: one decoder's estimates. The
// model name must pass ValidToken.
func (s Subjects) Decode(model string) (string, error) {
	if err := ValidToken(model); err != nil {
		return "", fmt.Errorf("decoder model: %w", err)
	}
	return s.base + "decode." + model, nil
}

// Raw is spikeline.<rig>.raw.<group>: raw or filtered sample blocks of one
// channel group. The group name must pass ValidToken.
func (s Subjects) Raw(group string) (string, error) {
	if err := ValidToken(group); err != nil {
		return "", fmt.Errorf("raw group: %w", err)
	}
	return s.base + "raw." + group, nil
}

// Control is spikeline.<rig>.ctl: the prefix of the control service's
// endpoints (info, stats, refit, threshold, command).
func (s Subjects) Control() string { return s.base + "ctl" }

// All is spikeline.<rig>.>: every subject of the rig, binary and JSON.
func (s Subjects) All() string { return s.base + ">" }

// JSON returns the JSON twin of a binary subject.
func JSON(subject string) string { return subject + JSONSuffix }

// IsJSON reports whether subject names a JSON twin.
func IsJSON(subject string) bool { return strings.HasSuffix(subject, JSONSuffix) }

// Topic is what a subject carries.
type Topic uint8

// Topics, in the order of docs/subjects.md.
const (
	TopicUnknown Topic = iota
	TopicSpikes
	TopicDecode
	TopicStatus
	TopicEvents
	TopicTemplates
	TopicRaw
	TopicControl
)

var topicNames = [...]string{"unknown", "spikes", "decode", "status", "events", "templates", "raw", "ctl"}

func (t Topic) String() string {
	if int(t) < len(topicNames) {
		return topicNames[t]
	}
	return fmt.Sprintf("topic(%d)", uint8(t))
}

// SubjectInfo is a parsed spikeline subject.
type SubjectInfo struct {
	Rig   string
	Topic Topic
	Name  string // decoder model (TopicDecode) or channel group (TopicRaw)
	JSON  bool   // the JSON twin
}

// ParseSubject splits a concrete spikeline subject into its parts.
func ParseSubject(subject string) (SubjectInfo, error) {
	var si SubjectInfo
	toks := strings.Split(subject, ".")
	if len(toks) > 0 && toks[len(toks)-1] == "json" {
		si.JSON = true
		toks = toks[:len(toks)-1]
	}
	if len(toks) < 3 || toks[0] != Prefix {
		return si, fmt.Errorf("schema: subject %q: want %s.<rig>.<topic>", subject, Prefix)
	}
	if err := ValidToken(toks[1]); err != nil {
		return si, fmt.Errorf("schema: subject %q: rig: %w", subject, err)
	}
	si.Rig = toks[1]
	switch toks[2] {
	case "spikes":
		si.Topic = TopicSpikes
	case "status":
		si.Topic = TopicStatus
	case "events":
		si.Topic = TopicEvents
	case "templates":
		si.Topic = TopicTemplates
	case "ctl":
		si.Topic = TopicControl
		if len(toks) > 3 {
			si.Name = strings.Join(toks[3:], ".")
		}
		return si, nil
	case "decode", "raw":
		si.Topic = TopicDecode
		if toks[2] == "raw" {
			si.Topic = TopicRaw
		}
		if len(toks) != 4 {
			return si, fmt.Errorf("schema: subject %q: want %s.<rig>.%s.<name>", subject, Prefix, toks[2])
		}
		if err := ValidToken(toks[3]); err != nil {
			return si, fmt.Errorf("schema: subject %q: %w", subject, err)
		}
		si.Name = toks[3]
		return si, nil
	default:
		return si, fmt.Errorf("schema: subject %q: unknown topic %q", subject, toks[2])
	}
	if len(toks) != 3 {
		return si, fmt.Errorf("schema: subject %q: unexpected tokens after %q", subject, toks[2])
	}
	return si, nil
}
