package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The npm packages the dashboards are checked with, pinned; .ci/run installs
// exactly these (it reads them from this file) into grafanaSchemaDir.
const (
	GrafanaSchemaPackage = "@grafana/schema@13.2.3"
	TypeScriptPackage    = "typescript@5.9.3"
)

// grafanaSchemaDir is the npm folder holding both packages:
// $KPIPE_GRAFANA_SCHEMA_DIR, else the user cache's
// kpipe/grafana-schema-<version>-typescript-<version>.
func grafanaSchemaDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("KPIPE_GRAFANA_SCHEMA_DIR"); d != "" {
		return d
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	_, gs, _ := strings.Cut(strings.TrimPrefix(GrafanaSchemaPackage, "@"), "@")
	_, tsv, _ := strings.Cut(TypeScriptPackage, "@")
	return filepath.Join(cache, "kpipe", "grafana-schema-"+gs+"-typescript-"+tsv)
}

// schemaChecker returns node and the npm folder, or skips (fails when CI
// is set: CI must run every test) naming what to install.
func schemaChecker(t *testing.T) (node, dir string) {
	t.Helper()
	dir = grafanaSchemaDir(t)
	node, err := exec.LookPath("node")
	msg := ""
	switch {
	case err != nil:
		msg = "node is not on PATH: install Debian's nodejs and npm packages (apt-get install nodejs npm)"
	default:
		for _, p := range []string{"@grafana/schema", "typescript"} {
			if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
				msg = p + " is not installed in " + dir + ": npm install --prefix " + dir + " " + GrafanaSchemaPackage + " " + TypeScriptPackage
				break
			}
		}
	}
	if msg == "" {
		return node, dir
	}
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so this test does not skip)")
	}
	t.Skip(msg)
	return "", ""
}

// runSchemaCheck runs testdata/grafana-schema-check.mjs on files.
func runSchemaCheck(t *testing.T, files ...string) (string, error) {
	t.Helper()
	node, dir := schemaChecker(t)
	cmd := exec.CommandContext(t.Context(), node, append([]string{filepath.Join("testdata", "grafana-schema-check.mjs"), dir}, files...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestDashboardsMatchGrafanaSchema type-checks every dashboard against the
// dashboard model of Grafana's published schema (@grafana/schema): a wrong
// type, a missing field or an unknown key fails, at the JSON's line.
func TestDashboardsMatchGrafanaSchema(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, dashboardsDir, "*.json"))
	if err != nil || len(files) < 3 {
		t.Fatalf("dashboards: %v, %v", files, err)
	}
	out, err := runSchemaCheck(t, files...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "dashboards match @grafana/schema") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	t.Log(strings.TrimSpace(out))
}

// TestGrafanaSchemaCheckFails: the check finds what the schema refuses, at
// the line of the JSON file: an enum value the schema does not have, a
// field of the wrong type, an unknown key.
func TestGrafanaSchemaCheckFails(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(repoRoot, dashboardsDir, "itel-overview.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, old, new, want string
	}{
		{"enum", `"mode": "palette-classic"`, `"mode": "palette-rainbow"`, `"palette-rainbow"' is not assignable`},
		{"type", `"graphTooltip": 1`, `"graphTooltip": "shared"`, `Type 'string' is not assignable`},
		{"unknown key", `"liveNow": false`, `"liveNow": false, "refreshEvery": "5s"`, `'"refreshEvery"' does not exist`},
	}
	// One run for all of them: each compile takes seconds.
	dir := t.TempDir()
	var files []string
	lines := make([]int, len(cases))
	for i, tc := range cases {
		src := string(good)
		if !strings.Contains(src, tc.old) {
			t.Fatalf("itel-overview.json has no %s", tc.old)
		}
		lines[i] = strings.Count(src[:strings.Index(src, tc.old)], "\n") + 1
		f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
		if err := os.WriteFile(f, []byte(strings.Replace(src, tc.old, tc.new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	out, err := runSchemaCheck(t, files...)
	if err == nil {
		t.Fatalf("no error:\n%s", out)
	}
	for i, tc := range cases {
		at := files[i] + ":" + strconv.Itoa(lines[i]) + ":"
		found := false
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, at) && strings.Contains(l, tc.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want %q at %s, got:\n%s", tc.name, tc.want, at, out)
		}
	}
}
