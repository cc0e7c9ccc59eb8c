package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/cli.md from the commands' flags")

// cliDoc renders every command's usage, as `spikeline <command> -h`
// prints it, into docs/cli.md.
func cliDoc(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# The spikeline command\n\n")
	b.WriteString("`spikeline <command> [flags]`. With no command, `spikeline` runs `run`. Flags are checked\n")
	b.WriteString("before anything starts: a bad flag exits with status 2 and a message naming it; a failure\n")
	b.WriteString("while running exits with 1. Channels are 0-based everywhere.\n\n")
	b.WriteString("This file is generated from the commands themselves:\n")
	b.WriteString("`go test ./cmd/spikeline -run TestCLIDoc -update`.\n\n")
	var top bytes.Buffer
	usage(&top)
	b.WriteString("```\n" + top.String() + "```\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	help := func(title, summary string, args ...string) {
		var stdout, stderr bytes.Buffer
		if code := realMain(args, &stdout, &stderr); code != 0 {
			t.Fatalf("spikeline %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
		}
		if summary != "" {
			summary += ".\n\n"
		}
		fmt.Fprintf(&b, "\n## %s\n\n%s```\n%s%s```\n", title, summary, stdout.String(), stderr.String())
	}
	for _, n := range names {
		help("spikeline "+n, commands[n].summary, n, "-h")
		for _, sub := range subcommands[n] {
			help("spikeline "+n+" "+sub, "", n, sub, "-h")
		}
	}
	return b.String()
}

// subcommands lists the second-level commands documented in docs/cli.md.
var subcommands = map[string][]string{
	"decode": {"fit", "eval"},
	"sim":    {"serve"},
}

func TestCLIDoc(t *testing.T) {
	got := cliDoc(t)
	const path = "../../docs/cli.md"
	if *updateDocs {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (make it with -update)", err)
	}
	if string(want) != got {
		t.Errorf("docs/cli.md is out of date with the commands' flags: go test ./cmd/spikeline -run TestCLIDoc -update")
	}
}
