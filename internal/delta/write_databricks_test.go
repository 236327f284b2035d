package delta

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
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

// identityCommit0 creates a table with an identity column (id BIGINT
// GENERATED ALWAYS AS IDENTITY (START WITH 10 INCREMENT BY 5)) and one
// GENERATED BY DEFAULT (START WITH -1 INCREMENT BY -2), as Spark writes it.
const identityCommit0 = `{"commitInfo":{"timestamp":1735689600000,"operation":"CREATE TABLE"}}
{"metaData":{"id":"8d2e3f4a-5b6c-7d8e-9f0a-1b2c3d4e5f6a","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"id\",\"type\":\"long\",\"nullable\":false,\"metadata\":{\"delta.identity.start\":10,\"delta.identity.step\":5,\"delta.identity.allowExplicitInsert\":false}},{\"name\":\"seq\",\"type\":\"long\",\"nullable\":true,\"metadata\":{\"delta.identity.start\":-1,\"delta.identity.step\":-2,\"delta.identity.allowExplicitInsert\":true}},{\"name\":\"v\",\"type\":\"string\",\"nullable\":true,\"metadata\":{}}]}","partitionColumns":[],"configuration":{},"createdTime":1735689600000}}
{"protocol":{"minReaderVersion":1,"minWriterVersion":7,"writerFeatures":["appendOnly","invariants","identityColumns"]}}
`

// TestIdentityColumns: generated values continue past the high-water mark
// in the step's direction, the commit raises the mark, an explicit value is
// refused for GENERATED ALWAYS and kept for GENERATED BY DEFAULT.
func TestIdentityColumns(t *testing.T) {
	store, _ := NewLocalStorage(t.TempDir())
	if err := store.PutIfAbsent(t.Context(), commitKey(0), []byte(identityCommit0)); err != nil {
		t.Fatal(err)
	}
	tb, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	for c := range 2 {
		rows := []map[string]any{{"v": "a"}, {"v": "b"}, {"v": "c", "seq": int64(1000)}}
		if c == 0 {
			_, err = tb.Append(t.Context(), rows, AppendOptions{})
		} else {
			// Rows by column fill their identity values the same way.
			_, err = tb.AppendRows(t.Context(), rowsOf(rows), AppendOptions{})
		}
		if err != nil {
			t.Fatalf("append %d: %v", c, err)
		}
		if rows[0]["id"] != nil {
			t.Fatal("the caller's row was modified")
		}
	}
	s, _ := tb.Snapshot(t.Context())
	if hwm, _ := metaInt(s.Schema().Field("id").Metadata[metaIdentityHWM]); hwm != 35 {
		t.Fatalf("id high-water mark %v, want 35", s.Schema().Field("id").Metadata)
	}
	if hwm, _ := metaInt(s.Schema().Field("seq").Metadata[metaIdentityHWM]); hwm != -7 {
		t.Fatalf("seq high-water mark %v, want -7", s.Schema().Field("seq").Metadata)
	}
	rows, err := ReadRows(t.Context(), store, s)
	if err != nil {
		t.Fatal(err)
	}
	var ids, seqs []int64
	for _, r := range rows {
		ids = append(ids, r["id"].(int64))
		seqs = append(seqs, r["seq"].(int64))
	}
	slices.Sort(ids)
	slices.Sort(seqs)
	if !slices.Equal(ids, []int64{10, 15, 20, 25, 30, 35}) || !slices.Equal(seqs, []int64{-7, -5, -3, -1, 1000, 1000}) {
		t.Fatalf("ids %v seqs %v", ids, seqs)
	}
	explicit := []map[string]any{{"v": "x", "id": int64(3)}}
	_, err = tb.Append(t.Context(), explicit, AppendOptions{})
	var se *SchemaError
	if !errors.As(err, &se) || se.Path != "id" || !strings.Contains(err.Error(), "GENERATED ALWAYS") {
		t.Fatalf("explicit id: got %v", err)
	}
	if _, rerr := tb.AppendRows(t.Context(), rowsOf(explicit), AppendOptions{}); fmt.Sprint(rerr) != fmt.Sprint(err) {
		t.Fatalf("explicit id by column: got %v, want %v", rerr, err)
	}
}
