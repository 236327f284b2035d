package delta

import (
	"bytes"

	"encoding/json"
	"github.com/parquet-go/parquet-go"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func copyRefTable(t *testing.T, set, name string) *LocalStorage {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dst, os.DirFS(testdataTable(t, set, name))); err != nil {
		t.Fatal(err)
	}
	store, err := NewLocalStorage(dst)
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// The golden v2 checkpoint tables (UUID-named JSON and Parquet
// checkpoints with sidecars, _last_checkpoint with a v2Checkpoint field)
// replay from their checkpoint, and take appends and a checkpoint of
// kpipe's: classic, single-file, V2 spec.
func TestV2CheckpointReferenceTables(t *testing.T) {
	for _, name := range []string{"v2-checkpoint-json", "v2-checkpoint-parquet"} {
		t.Run(name, func(t *testing.T) {
			store := copyRefTable(t, "delta-golden", name)
			tb, err := Open(t.Context(), store, WithSyncCheckpoints(), WithCheckpointInterval(1000))
			if err != nil {
				t.Fatal(err)
			}
			snap, _ := tb.Snapshot(t.Context())
			if snap.checkpointVersion != 2 || snap.NumFiles() != 4 {
				t.Fatalf("replay from checkpoint %d with %d files; want the UUID-named checkpoint 2 and its sidecars' 4 files", snap.checkpointVersion, snap.NumFiles())
			}
			if got := readIDs(t, store); !slices.Equal(got, idsExcept(10)) {
				t.Fatalf("read %v, want 0..9", got)
			}
			before := snap.Protocol()
			if _, err := tb.Append(t.Context(), []map[string]any{{"id": int64(10)}, {"id": int64(11)}}, AppendOptions{}); err != nil {
				t.Fatal(err)
			}
			snap, _ = tb.Snapshot(t.Context())
			if err := tb.Checkpoint(t.Context(), snap); err != nil {
				t.Fatal(err)
			}
			l := mustList(t, tb)
			parts := l.checkpoints[snap.Version()]
			if len(parts) != 1 || parts[0].uuid || parts[0].parts != 0 {
				t.Fatalf("checkpoint files %+v, want one classic file", parts)
			}
			acts, err := readCheckpoint(t.Context(), store, parts)
			if err != nil {
				t.Fatal(err)
			}
			metas := 0
			for _, a := range acts {
				if a.CheckpointMetadata != nil && a.CheckpointMetadata.Version == snap.Version() {
					metas++
				}
			}
			if metas != 1 {
				t.Fatalf("%d checkpointMetadata actions, want 1 (V2 spec)", metas)
			}
			fresh, err := Open(t.Context(), store)
			if err != nil {
				t.Fatal(err)
			}
			fs, _ := fresh.Snapshot(t.Context())
			if fs.checkpointVersion != snap.Version() || !reflect.DeepEqual(fs.Protocol(), before) {
				t.Fatalf("reread from %d, protocol %+v (was %+v)", fs.checkpointVersion, fs.Protocol(), before)
			}
			assertSameState(t, snap, fs)
			if got := readIDs(t, store); !slices.Equal(got, idsExcept(12)) {
				t.Fatalf("after append: %v", got)
			}
		})
	}
}

// A kpipe table with deletionVectors and v2Checkpoint survives appends, a
// checkpoint and a reread.
func TestV2CheckpointKpipeTable(t *testing.T) {
	tb, store := dvTestTable(t, 5, []string{"v2Checkpoint"}, map[string]string{"delta.checkpointPolicy": "v2"})
	deleteWithDV(t, tb, []uint64{2}, true)
	for i := range 3 {
		if _, err := tb.Append(t.Context(), idRows(10+i, 11+i), AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	snap, _ := tb.Snapshot(t.Context())
	if err := tb.Checkpoint(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Append(t.Context(), idRows(20, 21), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []int64{0, 1, 3, 4, 10, 11, 12, 20}
	if got := readIDs(t, store); !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	fresh, _ := Open(t.Context(), store)
	fs, _ := fresh.Snapshot(t.Context())
	if fs.checkpointVersion != snap.Version() {
		t.Fatalf("reread did not use the checkpoint")
	}
	for _, lf := range mustList(t, tb).checkpoints {
		if len(lf) != 1 || lf[0].parts != 0 {
			t.Fatalf("multi-part checkpoint on a v2Checkpoint table: %+v", lf)
		}
	}
}

// Checkpoints honour delta.checkpoint.writeStatsAsJson / writeStatsAsStruct;
// stats read from stats_parsed survive a kpipe checkpoint.
func TestCheckpointStatsForms(t *testing.T) {
	for _, c := range []struct {
		name              string
		json, structStats string
	}{
		{"json only (default)", "", ""},
		{"struct only", "false", "true"},
		{"both", "true", "true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := map[string]string{}
			if c.json != "" {
				cfg[propStatsAsJSON] = c.json
			}
			if c.structStats != "" {
				cfg[propStatsAsStruct] = c.structStats
			}
			tb, store := dvTestTable(t, 30, nil, cfg)
			deleteWithDV(t, tb, []uint64{1}, false)
			snap, _ := tb.Snapshot(t.Context())
			if err := tb.Checkpoint(t.Context(), snap); err != nil {
				t.Fatal(err)
			}
			data, err := store.Read(t.Context(), checkpointKey(snap.Version()))
			if err != nil {
				t.Fatal(err)
			}
			cols := parquetColumnPaths(t, data)
			if has := slices.Contains(cols, "add.stats"); has != (c.json != "false") {
				t.Fatalf("add.stats column present %v, columns %v", has, cols)
			}
			if has := slices.Contains(cols, "add.stats_parsed.numRecords"); has != (c.structStats == "true") {
				t.Fatalf("add.stats_parsed present %v, columns %v", has, cols)
			}
			// A fresh reader gets the same stats from either form, and a
			// second checkpoint of that state keeps them.
			for round := range 2 {
				fresh, _ := Open(t.Context(), store, WithSyncCheckpoints())
				fs, _ := fresh.Snapshot(t.Context())
				if fs.checkpointVersion != snap.Version()+int64(round) {
					t.Fatalf("round %d: replay from %d", round, fs.checkpointVersion)
				}
				if !sameStats(fs.Files()[0].Stats, snap.Files()[0].Stats) {
					t.Fatalf("round %d: stats %s, want %s", round, fs.Files()[0].Stats, snap.Files()[0].Stats)
				}
				if d := Describe("", fs); d.NumRows != 29 || !d.RowsExact {
					t.Fatalf("describe %d rows", d.NumRows)
				}
				if round == 0 {
					writeCommit(t, fresh, action{Txn: &Txn{AppID: "a", Version: 1}})
					next, _ := fresh.Snapshot(t.Context())
					if err := fresh.Checkpoint(t.Context(), next); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

func sameStats(a, b string) bool {
	var x, y map[string]any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	delete(x, "tightBounds")
	delete(y, "tightBounds")
	return reflect.DeepEqual(x, y)
}

func parquetColumnPaths(t *testing.T, data []byte) []string {
	t.Helper()
	root, err := parquetTree(data)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(n *pnode, prefix string)
	walk = func(n *pnode, prefix string) {
		for _, c := range n.children {
			p := strings.TrimPrefix(prefix+"."+c.name, ".")
			out = append(out, p)
			walk(c, p)
		}
	}
	walk(root, "")
	return out
}

func parquetTree(data []byte) (*pnode, error) {
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	return buildPTree(f.Metadata().Schema)
}

// On a partitioned Spark table, a checkpoint with stats only as structs
// (stats_parsed, partitionValues_parsed) gives a fresh reader the same
// files, stats and partition values.
func TestCheckpointStatsStructPartitioned(t *testing.T) {
	store := copyRefTable(t, "delta-golden", "dv-partitioned-with-checkpoint")
	tb, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := tb.Snapshot(t.Context())
	md := snap.Metadata()
	md.Configuration[propStatsAsJSON] = "false"
	md.Configuration[propStatsAsStruct] = "true"
	writeCommit(t, tb, action{MetaData: &md})
	snap, _ = tb.Snapshot(t.Context())
	if err := tb.Checkpoint(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	data, _ := store.Read(t.Context(), checkpointKey(snap.Version()))
	cols := parquetColumnPaths(t, data)
	for _, c := range []string{"add.partitionValues_parsed.part", "add.stats_parsed.minValues.col1", "add.stats_parsed.nullCount.col2"} {
		if !slices.Contains(cols, c) {
			t.Fatalf("no column %s in %v", c, cols)
		}
	}
	if slices.Contains(cols, "add.stats") {
		t.Fatal("add.stats written with writeStatsAsJson false")
	}
	fresh, _ := Open(t.Context(), store)
	fs, _ := fresh.Snapshot(t.Context())
	if fs.checkpointVersion != snap.Version() {
		t.Fatalf("replay from %d", fs.checkpointVersion)
	}
	a, b := snap.Files(), fs.Files()
	if len(a) != len(b) {
		t.Fatalf("%d files, want %d", len(b), len(a))
	}
	for i := range a {
		if !reflect.DeepEqual(a[i].PartitionValues, b[i].PartitionValues) || !sameStats(a[i].Stats, b[i].Stats) || string(a[i].DeletionVector) != string(b[i].DeletionVector) {
			t.Fatalf("file %s:\n%v %s\n%v %s", a[i].Path, a[i].PartitionValues, a[i].Stats, b[i].PartitionValues, b[i].Stats)
		}
	}
}
