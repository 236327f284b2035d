package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLeanBuild builds kpipe with -tags noduckdb, the worker build without
// DuckDB: no module of its dependencies is DuckDB's, none outside the
// standard library needs cgo (so CGO_ENABLED=0 builds it), the worker's
// commands are there, and kpipe query and kpipe report fail with a message
// that says how to get them.
func TestLeanBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kpipe")
	}
	out, err := exec.Command("go", "list", "-tags", "noduckdb", "-deps",
		"-f", `{{if not .Standard}}{{.ImportPath}}{{if .CgoFiles}} cgo{{end}}{{end}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var deps []string // one line a package outside the standard library
	for line := range strings.Lines(string(out)) {
		if line = strings.TrimSpace(line); line != "" {
			deps = append(deps, line)
		}
	}
	if len(deps) < 20 || !strings.Contains(string(out), "kpipe/internal/pipeline") {
		t.Fatalf("go list -deps gave %d packages:\n%s", len(deps), out)
	}
	for _, line := range deps {
		if strings.Contains(line, "duckdb") || strings.HasSuffix(line, " cgo") {
			t.Errorf("lean build depends on %s", line)
		}
	}
	bin := filepath.Join(t.TempDir(), "kpipe")
	if out, err := exec.Command("go", "build", "-tags", "noduckdb", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags noduckdb: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "worker", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--metrics-addr") {
		t.Errorf("kpipe worker --help: %v\n%s", err, out)
	}
	for _, name := range []string{"query", "report"} {
		out, err := exec.Command(bin, name, "--table", "t", "SELECT 1").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), name+" needs DuckDB") || !strings.Contains(string(out), "go build ./cmd/kpipe") {
			t.Errorf("kpipe %s in the lean build: %v\n%s", name, err, out)
		}
	}
}
