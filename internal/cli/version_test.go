package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersion: kpipe version says the version every Delta commit carries
// in commitInfo.engineInfo.
func TestVersion(t *testing.T) {
	out, errs, code := runTable(t, "version", "--json")
	if code != ExitOK {
		t.Fatalf("version: exit %d %s", code, errs)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v["version"] == "" || v["engine_info"] != "kpipe/"+v["version"] || !strings.HasPrefix(v["go"], "go") {
		t.Fatalf("version: %v", v)
	}
	loc := filepath.Join(t.TempDir(), "tbl")
	if _, errs, code := runTable(t, "table", "create", "--location", loc); code != ExitOK {
		t.Fatalf("create: %s", errs)
	}
	hist, _, code := runTable(t, "table", "history", loc)
	if code != ExitOK || !strings.Contains(hist, v["engine_info"]) {
		t.Fatalf("history does not show engineInfo %q:\n%s", v["engine_info"], hist)
	}
	text, _, _ := runTable(t, "version")
	if !strings.Contains(text, "kpipe "+v["version"]) {
		t.Fatalf("version text: %s", text)
	}
}
