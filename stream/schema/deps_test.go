package schema_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDepsStandardLibraryOnly: a subscriber that imports this package
// alone compiles nothing outside Go's standard library (go list -deps).
func TestDepsStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v\n%s", err, out)
	}
	var outside []string
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/spikeline/spikeline/stream/schema" {
			outside = append(outside, p)
		}
	}
	if len(outside) > 0 {
		t.Errorf("stream/schema depends on packages outside the standard library: %v", outside)
	}
}
