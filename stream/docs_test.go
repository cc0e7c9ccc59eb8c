package stream

import (
	"bytes"
	"os"
	"os/exec"
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
	doc, err := os.ReadFile("../docs/schemas.md")
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
