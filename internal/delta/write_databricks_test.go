package delta

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// databricksCommit0 is the first commit of a table as Databricks Runtime
// creates it with CREATE TABLE ... CLUSTER BY and the default features of
// new tables (column mapping by name, row tracking, in-commit timestamps,
// liquid clustering, identity columns supported but none defined), minus
// deletion vectors and v2 checkpoints (the log side of issue 14).
const databricksCommit0 = `{"commitInfo":{"timestamp":1735689600000,"inCommitTimestamp":1735689600000,"operation":"CREATE TABLE","operationParameters":{"partitionBy":"[]","clusterBy":"[\"event_type\"]"},"isolationLevel":"WriteSerializable","isBlindAppend":true,"engineInfo":"Databricks-Runtime/15.4.x-scala2.12","txnId":"0b7f1a6e-6f3c-4f2e-9d1c-5a8f2e3b4c5d"}}
{"metaData":{"id":"7c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"event id\",\"type\":\"string\",\"nullable\":true,\"metadata\":{\"delta.columnMapping.id\":1,\"delta.columnMapping.physicalName\":\"col-1f0e9d8c-7b6a-4594-8372-61504f3e2d1c\"}},{\"name\":\"event_type\",\"type\":\"string\",\"nullable\":true,\"metadata\":{\"delta.columnMapping.id\":2,\"delta.columnMapping.physicalName\":\"col-2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b\"}},{\"name\":\"n\",\"type\":\"long\",\"nullable\":true,\"metadata\":{\"delta.columnMapping.id\":3,\"delta.columnMapping.physicalName\":\"col-3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f\"}}]}","partitionColumns":[],"configuration":{"delta.columnMapping.mode":"name","delta.columnMapping.maxColumnId":"3","delta.enableRowTracking":"true","delta.rowTracking.materializedRowIdColumnName":"_row-id-col-4d5e6f7a","delta.rowTracking.materializedRowCommitVersionColumnName":"_row-commit-version-col-5e6f7a8b","delta.enableInCommitTimestamps":"true","delta.checkpoint.writeStatsAsJson":"false","delta.checkpoint.writeStatsAsStruct":"true"},"createdTime":1735689600000}}
{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["columnMapping"],"writerFeatures":["appendOnly","invariants","checkConstraints","changeDataFeed","generatedColumns","columnMapping","identityColumns","domainMetadata","rowTracking","inCommitTimestamp","clustering"]}}
{"domainMetadata":{"domain":"delta.clustering","configuration":"{\"clusteringColumns\":[[\"col-2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b\"]]}","removed":false}}
{"domainMetadata":{"domain":"delta.rowTracking","configuration":"{\"rowIdHighWaterMark\":41}","removed":false}}
`

// TestAppendToDatabricksStyleTable: kpipe appends to a table created the
// way Databricks creates them, keeping every rule: physical names, row ids
// above the high-water mark, in-commit timestamps, the clustering domain
// with stats for its column; the protocol and configuration unchanged.
func TestAppendToDatabricksStyleTable(t *testing.T) {
	dir := t.TempDir()
	store, _ := NewLocalStorage(dir)
	if err := store.PutIfAbsent(t.Context(), commitKey(0), []byte(databricksCommit0)); err != nil {
		t.Fatal(err)
	}
	tb, err := Open(t.Context(), store, WithSyncCheckpoints(), WithCheckpointInterval(2))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := tb.Snapshot(t.Context())
	if err := before.CheckAppend(true); err != nil {
		t.Fatalf("CheckAppend: %v", err)
	}
	var want []map[string]any
	for c := range 3 {
		var rows []map[string]any
		for i := range 4 {
			rows = append(rows, map[string]any{"event id": "e" + strconv.Itoa(c*10+i), "event_type": "T", "n": int64(i)})
		}
		if _, err := tb.Append(t.Context(), rows, AppendOptions{Txns: []Txn{{AppID: "kpipe", Version: int64(c + 1)}}}); err != nil {
			t.Fatalf("append %d: %v", c, err)
		}
		want = append(want, rows...)
	}
	tb.Close(t.Context())
	re, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := re.Snapshot(t.Context())
	if s.Version() != 3 || s.CheckpointVersion() != 2 {
		t.Fatalf("version %d checkpoint %d", s.Version(), s.CheckpointVersion())
	}
	if !reflect.DeepEqual(s.Protocol(), before.Protocol()) || !reflect.DeepEqual(s.Metadata().Configuration, before.Metadata().Configuration) {
		t.Fatalf("protocol or configuration changed: %+v %v", s.Protocol(), s.Metadata().Configuration)
	}
	rows, err := ReadRows(t.Context(), store, s)
	if err != nil {
		t.Fatal(err)
	}
	assertRows(t, rows, want)
	checkRowTracking(t, s)
	for _, f := range s.Files() {
		if *f.BaseRowID <= 41 {
			t.Fatalf("baseRowId %d not above the high-water mark 41", *f.BaseRowID)
		}
		if !strings.Contains(f.Stats, `"col-2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b":"T"`) || strings.Contains(f.Stats, `"event_type"`) {
			t.Fatalf("stats not by physical name for the clustering column: %s", f.Stats)
		}
		checkFeatureFile(t, dir, s, f)
	}
	if got := clusteringColumns(s); len(got) != 1 {
		t.Fatalf("clustering domain lost: %v", s.domains)
	}
	checkICT(t, dir, s.Version())
	var c0 struct {
		ICT int64 `json:"inCommitTimestamp"`
	}
	_ = json.Unmarshal(logEntry(t, dir, 0)[0]["commitInfo"], &c0)
	if c0.ICT != 1735689600000 {
		t.Fatalf("commit 0 ICT %d", c0.ICT)
	}
}
