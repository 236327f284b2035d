package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The package list of docs/architecture.md's "Code layout" is the layering:
// every import of a kpipe package points down it, and every package is in
// it. A new package, or an import that points up, fails here until the
// design says why.
func TestLayering(t *testing.T) {
	doc, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(doc), "## Code layout")
	if !ok {
		t.Fatal(`docs/architecture.md has no "## Code layout"`)
	}
	rank := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^(internal/[a-z0-9]+)/`).FindAllStringSubmatch(layout, -1) {
		if _, dup := rank[m[1]]; !dup {
			rank[m[1]] = len(rank)
		}
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, "kpipe/internal/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	testOnly := map[string]bool{"internal/chaos": true, "internal/deploytest": true, "internal/browsertest": true}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		pkg = strings.TrimPrefix(pkg, "kpipe/")
		if testOnly[pkg] {
			continue
		}
		r, ok := rank[pkg]
		if !ok {
			t.Errorf("%s is not in docs/architecture.md's code layout", pkg)
			continue
		}
		for _, imp := range strings.Fields(imports) {
			imp, ok := strings.CutPrefix(imp, "kpipe/")
			if !ok {
				continue
			}
			if ri, known := rank[imp]; known && ri <= r {
				t.Errorf("%s imports %s, which the code layout lists above it", pkg, imp)
			}
		}
	}
}
