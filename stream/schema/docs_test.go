package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// findPythonNumpy returns a python3 that can import numpy, or "".
func findPythonNumpy() string {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import numpy").Run() == nil {
			return py
		}
	}
	return ""
}

// TestDocsPythonDecoder runs the Python decoder printed in docs/schemas.md
// on the worked example, so the documented code really decodes our bytes.
// Skipped when no python3 with numpy is installed.
func TestDocsPythonDecoder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs python")
	}
	py := findPythonNumpy()
	if py == "" {
		t.Skip("no python3 with numpy")
	}
	doc, err := os.ReadFile("../../docs/schemas.md")
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(doc, []byte("```python\n"))
	if start < 0 {
		t.Fatal("no python block in docs/schemas.md")
	}
	code := doc[start+len("```python\n"):]
	code = code[:bytes.Index(code, []byte("```"))]
	m := sampleMessages()[0].(*SpikeBatch)
	data, _ := m.MarshalBinary()
	script := string(code) + `
import sys
buf = bytes.fromhex(sys.stdin.read())
first, end, rate, pub_ns, spikes = decode_spikes(buf)
print(first, end, rate, pub_ns)
for s in spikes:
    print(int(s["sample"]), int(s["channel"]), int(s["unit"]), float(s["amp_uv"]))
try:
    decode_spikes(buf[:60])
    print("truncated accepted")
except ValueError:
    print("truncated refused")
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(hexString(data))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := "30000 30600 30000.0 1700000000123456789\n30012 3 7 -84.5\n30480 31 0 -52.25\ntruncated refused\n"
	if string(out) != want {
		t.Fatalf("python decoder printed\n%s\nwant\n%s", out, want)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

// TestDocsByteTables checks that docs/schemas.md documents the common
// header and has, for every message type this package knows, a section
// "## Type N: name" with a byte table whose body starts at offset 32 (the
// end of the common header), a JSON form and a row in the versioning table.
func TestDocsByteTables(t *testing.T) {
	b, err := os.ReadFile("../../docs/schemas.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	const table = "| offset | size | type | field | meaning |"
	sections := map[string]string{}
	for _, s := range strings.Split(doc, "\n## ")[1:] {
		title, body, _ := strings.Cut(s, "\n")
		sections[title] = body
	}
	hdr, ok := sections["Common header (32 bytes)"]
	if !ok || !strings.Contains(hdr, table) {
		t.Fatalf("docs/schemas.md has no common header byte table")
	}
	for _, row := range []string{"| 0 | 4 | bytes | magic |", "| 4 | 1 | u8 | version |", "| 5 | 1 | u8 | type |",
		"| 6 | 2 | u16 | flags |", "| 8 | 8 | u64 | sample |", "| 16 | 8 | f64 | rate |", "| 24 | 8 | i64 | pub_ns |"} {
		if !strings.Contains(hdr, row) {
			t.Errorf("common header table lacks %q", row)
		}
	}
	versioning := sections["Versioning"]
	n := 0
	for i := 1; i < 256; i++ {
		typ := Type(i)
		if typ.String() == fmt.Sprintf("type(%d)", i) {
			continue // not a type this package knows
		}
		n++
		prefix := fmt.Sprintf("Type %d: %s — ", i, typ)
		var body string
		found := false
		for title, b := range sections {
			if strings.HasPrefix(title, prefix) {
				body, found = b, true
			}
		}
		if !found {
			t.Errorf("docs/schemas.md has no section %q…", "## "+prefix)
			continue
		}
		at := strings.Index(body, table)
		if at < 0 {
			t.Errorf("section %q has no byte table", prefix)
			continue
		}
		rows := strings.SplitN(body[at:], "\n", 4)
		if len(rows) < 3 || !strings.HasPrefix(rows[2], fmt.Sprintf("| %d |", HeaderSize)) {
			t.Errorf("section %q: the byte table does not start at offset %d", prefix, HeaderSize)
		}
		if !strings.Contains(body, fmt.Sprintf(`JSON: `+"`"+`{"v":%d,"type":"%s"`, Version, typ)) {
			t.Errorf("section %q has no JSON form", prefix)
		}
		if !strings.Contains(versioning, fmt.Sprintf("| %d %s |", i, typ)) {
			t.Errorf("the versioning table has no row for type %d %s", i, typ)
		}
	}
	if n != 6 {
		t.Errorf("found %d message types, the test expected 6: update it with the doc", n)
	}
}

// TestDocsVersioningGrowth holds the decoders to the versioning rule of
// docs/schemas.md: within a version a message may grow at its end (binary:
// bytes after the last known field; JSON: unknown keys), and readers
// decode what they know unchanged.
func TestDocsVersioningGrowth(t *testing.T) {
	for _, m := range sampleMessages() {
		b, err := Encode(nil, m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		got, err := Decode(append(b, 1, 2, 3, 4, 5, 6, 7))
		if err != nil {
			t.Errorf("%s with 7 more bytes: %v", m.Head().Type, err)
		} else if !reflect.DeepEqual(got, m) {
			t.Errorf("%s with 7 more bytes decodes differently:\n got %+v\nwant %+v", m.Head().Type, got, m)
		}
		j, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		j = append(j[:len(j)-1], `,"added_in_a_later_release":[1,{"x":2}]}`...)
		got, err = DecodeJSON(j)
		if err != nil {
			t.Errorf("%s JSON with an unknown key: %v", m.Head().Type, err)
			continue
		}
		b2, _ := Encode(nil, got)
		if !bytes.Equal(b2, b) {
			t.Errorf("%s JSON with an unknown key decodes differently: %+v", m.Head().Type, got)
		}
	}
}
