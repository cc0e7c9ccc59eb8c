package schema

import (
	"errors"
	"strings"
	"testing"
)

func TestSubjectValidToken(t *testing.T) {
	for _, ok := range []string{"rig0", "A", "lab-3_left", strings.Repeat("x", MaxTokenLen)} {
		if err := ValidToken(ok); err != nil {
			t.Errorf("ValidToken(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "*", ">", "a b", "rig\x00", "json", "ü", strings.Repeat("x", MaxTokenLen+1)} {
		err := ValidToken(bad)
		if !errors.Is(err, ErrToken) {
			t.Errorf("ValidToken(%q) = %v, want ErrToken", bad, err)
		}
	}
	if _, err := NewSubjects("a.b"); err == nil {
		t.Error("NewSubjects accepted a dotted rig")
	}
}

func TestSubjectNames(t *testing.T) {
	s, err := NewSubjects("r1")
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := s.Decode("kalman")
	raw, _ := s.Raw("g0")
	for got, want := range map[string]string{
		s.Spikes(): "spikeline.r1.spikes", s.Status(): "spikeline.r1.status", s.Events(): "spikeline.r1.events",
		s.Templates(): "spikeline.r1.templates", dec: "spikeline.r1.decode.kalman", raw: "spikeline.r1.raw.g0",
		s.Control(): "spikeline.r1.ctl", s.All(): "spikeline.r1.>", JSON(s.Spikes()): "spikeline.r1.spikes.json",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if _, err := s.Decode("a*"); err == nil {
		t.Error("Decode accepted a wildcard model")
	}
	if _, err := s.Raw(""); err == nil {
		t.Error("Raw accepted an empty group")
	}
}

func TestSubjectParse(t *testing.T) {
	for _, c := range []struct {
		subj string
		want SubjectInfo
	}{
		{"spikeline.r1.spikes", SubjectInfo{Rig: "r1", Topic: TopicSpikes}},
		{"spikeline.r1.spikes.json", SubjectInfo{Rig: "r1", Topic: TopicSpikes, JSON: true}},
		{"spikeline.r1.decode.ridge", SubjectInfo{Rig: "r1", Topic: TopicDecode, Name: "ridge"}},
		{"spikeline.r1.decode.ridge.json", SubjectInfo{Rig: "r1", Topic: TopicDecode, Name: "ridge", JSON: true}},
		{"spikeline.r1.raw.g0", SubjectInfo{Rig: "r1", Topic: TopicRaw, Name: "g0"}},
		{"spikeline.r1.status", SubjectInfo{Rig: "r1", Topic: TopicStatus}},
		{"spikeline.r1.events", SubjectInfo{Rig: "r1", Topic: TopicEvents}},
		{"spikeline.r1.templates", SubjectInfo{Rig: "r1", Topic: TopicTemplates}},
		{"spikeline.r1.ctl.info", SubjectInfo{Rig: "r1", Topic: TopicControl, Name: "info"}},
	} {
		got, err := ParseSubject(c.subj)
		if err != nil || got != c.want {
			t.Errorf("ParseSubject(%q) = %+v, %v; want %+v", c.subj, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "spikeline", "spikeline.r1", "other.r1.spikes", "spikeline.r.1.spikes",
		"spikeline.r1.nope", "spikeline.r1.spikes.extra", "spikeline.r1.decode", "spikeline.r1.decode.a.b", "spikeline.*.spikes"} {
		if _, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
}
