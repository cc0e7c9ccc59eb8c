package schema

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the binary decoder: it must never
// panic, and whatever it accepts must re-encode to a message that decodes
// to the same value.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		b, _ := Encode(nil, m)
		f.Add(b)
	}
	f.Add([]byte("SPKL"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		b, err := Encode(nil, m)
		if err != nil {
			return // e.g. a template whose pre is outside its waveform
		}
		m2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		b2, _ := Encode(nil, m2)
		if !reflect.DeepEqual(b, b2) {
			t.Fatalf("encoding not stable")
		}
	})
}

// FuzzDecodeJSON: the JSON decoder never panics on arbitrary input.
func FuzzDecodeJSON(f *testing.F) {
	for _, m := range sampleMessages() {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeJSON(data)
		if err != nil {
			return
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("decoded JSON does not re-encode: %v", err)
		}
	})
}
