package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every command that reads a table refuses one whose protocol kpipe does
// not implement, naming what: minReaderVersion 5, an unknown reader
// feature, catalogManaged.
func TestReaderCommandsRefuseUnreadableTables(t *testing.T) {
	for name, c := range map[string]struct{ protocol, want string }{
		"v5":      {`{"minReaderVersion":5,"minWriterVersion":7,"readerFeatures":["futureFeature"],"writerFeatures":["futureFeature"]}`, "minReaderVersion 5"},
		"unknown": {`{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors","futureFeature"],"writerFeatures":["deletionVectors","futureFeature"]}`, "futureFeature"},
		"catalog": {`{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["catalogManaged"],"writerFeatures":["catalogManaged","inCommitTimestamp"]}`, "catalogManaged"},
	} {
		loc := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(filepath.Join(loc, "_delta_log"), 0o755); err != nil {
			t.Fatal(err)
		}
		commit := `{"commitInfo":{"timestamp":1}}
{"protocol":` + c.protocol + `}
{"metaData":{"id":"x","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"id\",\"type\":\"long\",\"nullable\":true,\"metadata\":{}}]}","partitionColumns":[],"configuration":{}}}
`
		if err := os.WriteFile(filepath.Join(loc, "_delta_log", "00000000000000000000.json"), []byte(commit), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"table", "describe", loc},
			{"table", "history", loc},
			{"query", "--table", loc, "SELECT count(*) FROM " + name},
			{"report", "--table", loc, "--task-id", "1"},
		} {
			_, errs, code := runTable(t, args...)
			if code == ExitOK || !strings.Contains(errs, c.want) || !strings.Contains(errs, "unsupported table feature") {
				t.Errorf("%s %v: exit %d, stderr %q; want a refusal naming %s", name, args[:2], code, errs, c.want)
			}
		}
	}
}
