package delta

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The examples of PROTOCOL.md "Deletion Vector Descriptor Schema".
func TestDVDescriptorExamples(t *testing.T) {
	store, err := NewLocalStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	off := int32(4)
	key, err := dvFileKey(store, &DeletionVector{StorageType: "u", PathOrInlineDv: "ab^-aqEH.-t@S}K{vb[*k^", Offset: &off, SizeInBytes: 40, Cardinality: 6})
	if err != nil {
		t.Fatal(err)
	}
	if want := "ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"; key != want {
		t.Fatalf("u path: %s, want %s", key, want)
	}
	rows, err := readDV(t.Context(), store, &DeletionVector{StorageType: "i", PathOrInlineDv: "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L", SizeInBytes: 40, Cardinality: 6})
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{3, 4, 7, 11, 18, 29}; !slices.Equal(rows, want) {
		t.Fatalf("inline rows %v, want %v", rows, want)
	}
	d := DeletionVector{StorageType: "u", PathOrInlineDv: "x", Offset: &off}
	if d.UniqueID() != "ux@4" {
		t.Fatalf("uniqueId %s", d.UniqueID())
	}
	if z85Encode([]byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B}) != "HelloWorld" {
		t.Fatal("z85 encode of the Z85 spec's example")
	}
}

// Every container kind of the 32-bit RoaringBitmap format, in a 64-bit
// bitmap of two buckets.
func TestDVBitmapContainers(t *testing.T) {
	var want []uint64
	for i := range uint64(5000) { // a bitmap container (cardinality > 4096)
		want = append(want, 70000+i*2)
	}
	want = append(want, 1<<33|5, 1<<33|6, 1<<33|7) // second bucket
	b := encodeTestBitmap(want, true)
	got, err := decodeDVBitmap(b, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("decoded %d values, want %d", len(got), len(want))
	}
	// Run containers.
	runs := binary.LittleEndian.AppendUint32(nil, dvMagic)
	runs = binary.LittleEndian.AppendUint64(runs, 1)
	runs = binary.LittleEndian.AppendUint32(runs, 0)           // bucket key
	runs = binary.LittleEndian.AppendUint32(runs, 0<<16|12347) // one container, with runs
	runs = append(runs, 1)                                     // run bitset
	runs = binary.LittleEndian.AppendUint16(runs, 0)           // key
	runs = binary.LittleEndian.AppendUint16(runs, 9)           // cardinality-1
	runs = binary.LittleEndian.AppendUint16(runs, 2)           // two runs
	runs = binary.LittleEndian.AppendUint16(runs, 10)
	runs = binary.LittleEndian.AppendUint16(runs, 4) // 10..14
	runs = binary.LittleEndian.AppendUint16(runs, 100)
	runs = binary.LittleEndian.AppendUint16(runs, 4) // 100..104
	got, err = decodeDVBitmap(runs, -1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{10, 11, 12, 13, 14, 100, 101, 102, 103, 104}; !slices.Equal(got, want) {
		t.Fatalf("runs: %v", got)
	}
	if _, err := decodeDVBitmap(runs, 7); !errors.Is(err, ErrCorruptLog) {
		t.Fatalf("runs beyond the cardinality: %v", err)
	}
	for _, bad := range [][]byte{runs[:len(runs)-1], append([]byte{0}, runs[1:]...), nil} {
		if _, err := decodeDVBitmap(bad, -1); !errors.Is(err, ErrCorruptLog) {
			t.Fatalf("bad bitmap: %v", err)
		}
	}
}

// encodeTestBitmap serializes sorted values as a DV bitmap (array and
// bitmap containers, no runs).
func encodeTestBitmap(vals []uint64, _ bool) []byte {
	out := binary.LittleEndian.AppendUint32(nil, dvMagic)
	buckets := map[uint32][]uint32{}
	var keys []uint32
	for _, v := range vals {
		k := uint32(v >> 32)
		if _, ok := buckets[k]; !ok {
			keys = append(keys, k)
		}
		buckets[k] = append(buckets[k], uint32(v))
	}
	out = binary.LittleEndian.AppendUint64(out, uint64(len(keys)))
	for _, k := range keys {
		out = binary.LittleEndian.AppendUint32(out, k)
		conts := map[uint16][]uint16{}
		var ck []uint16
		for _, v := range buckets[k] {
			h := uint16(v >> 16)
			if _, ok := conts[h]; !ok {
				ck = append(ck, h)
			}
			conts[h] = append(conts[h], uint16(v))
		}
		out = binary.LittleEndian.AppendUint32(out, roaringCookieNoRun)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(ck)))
		for _, h := range ck {
			out = binary.LittleEndian.AppendUint16(out, h)
			out = binary.LittleEndian.AppendUint16(out, uint16(len(conts[h])-1))
		}
		for range ck {
			out = binary.LittleEndian.AppendUint32(out, 0) // offsets (unused by the reader)
		}
		for _, h := range ck {
			c := conts[h]
			if len(c) <= 4096 {
				for _, v := range c {
					out = binary.LittleEndian.AppendUint16(out, v)
				}
				continue
			}
			var words [1024]uint64
			for _, v := range c {
				words[v/64] |= 1 << (v % 64)
			}
			for _, w := range words {
				out = binary.LittleEndian.AppendUint64(out, w)
			}
		}
	}
	return out
}

// inlineDV is the deletionVector field of an inline DV removing rows.
func inlineDV(rows []uint64) json.RawMessage {
	b := encodeTestBitmap(rows, false)
	d := DeletionVector{StorageType: "i", PathOrInlineDv: z85Encode(b), SizeInBytes: int32(len(b)), Cardinality: int64(len(rows))}
	j, _ := json.Marshal(d)
	return j
}

// The delta golden tables with deletion vectors read as GoldenTables.scala
// wrote them: ids 0..49 less the rows DELETE removed.
func TestDVReferenceTables(t *testing.T) {
	cases := []struct {
		name, col string
		deleted   func(int64) bool
	}{
		// id 0..49, then DELETE id = 0, 7, 14 one at a time: each commit
		// adds the file with a new DV and removes it with the old one.
		{"log-replay-dv-key-cases", "id", func(i int64) bool { return i == 0 || i == 7 || i == 14 }},
		// col1 0..49 partitioned by col1 % 10, DELETE col1 = 0, 2, ..., 28
		// over 15 commits, a checkpoint at 10.
		{"dv-partitioned-with-checkpoint", "col1", func(i int64) bool { return i%2 == 0 && i <= 28 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store, err := NewLocalStorage(testdataTable(t, "delta-golden", c.name))
			if err != nil {
				t.Fatal(err)
			}
			tb, err := Open(t.Context(), store)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := tb.Snapshot(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			rows, err := ReadRows(t.Context(), store, snap)
			if err != nil {
				t.Fatal(err)
			}
			var got, want []int64
			for _, r := range rows {
				got = append(got, toI64(r[c.col]))
			}
			for i := int64(0); i < 50; i++ {
				if !c.deleted(i) {
					want = append(want, i)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("read %v\nwant %v", got, want)
			}
			// ReadColumns and the describe counts leave the deleted rows out too.
			var n int
			if err := ReadColumns(t.Context(), store, snap, snap.Files(), []string{c.col}, func(b *ColumnBatch) error {
				n += b.Len()
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			d := Describe(store.Location(), snap)
			if n != len(want) || d.NumRows != int64(len(want)) || !d.RowsExact {
				t.Fatalf("ReadColumns %d rows, describe %d (exact %v); want %d", n, d.NumRows, d.RowsExact, len(want))
			}
		})
	}
}

func toI64(v any) int64 {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case int64:
		return x
	}
	return -1
}

// dvTestTable creates a table whose protocol has deletionVectors (and
// extra reader-writer features), by writing its first commit directly,
// and appends rows id 0..n-1 in one file.
func dvTestTable(t *testing.T, n int, features []string, config map[string]string) (*Table, *LocalStorage) {
	t.Helper()
	dir := t.TempDir()
	store, err := NewLocalStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	feats := append([]string{"deletionVectors"}, features...)
	cfg := map[string]string{"delta.enableDeletionVectors": "true"}
	for k, v := range config {
		cfg[k] = v
	}
	md := Metadata{ID: "dv-test", Format: Format{Provider: "parquet"}, SchemaString: `{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"s","type":"string","nullable":true,"metadata":{}}]}`, Configuration: cfg}
	entry, err := encodeLogEntry([]action{
		{CommitInfo: map[string]any{"operation": "CREATE TABLE"}},
		{Protocol: &Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: feats, WriterFeatures: feats}},
		{MetaData: &md},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "_delta_log"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "_delta_log", "00000000000000000000.json"), entry, 0o644); err != nil {
		t.Fatal(err)
	}
	tb, err := Open(t.Context(), store, WithSyncCheckpoints(), WithCheckpointInterval(1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Append(t.Context(), idRows(0, n), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	return tb, store
}

func idRows(from, to int) []map[string]any {
	var rows []map[string]any
	for i := from; i < to; i++ {
		rows = append(rows, map[string]any{"id": int64(i), "s": "r"})
	}
	return rows
}

// writeCommit writes the next commit of tb directly.
func writeCommit(t *testing.T, tb *Table, acts ...action) {
	t.Helper()
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	entry, err := encodeLogEntry(append([]action{{CommitInfo: map[string]any{"operation": "DELETE"}}}, acts...))
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.store.PutIfAbsent(t.Context(), commitKey(snap.Version()+1), entry); err != nil {
		t.Fatal(err)
	}
}

// deleteWithDV commits what a DELETE with deletion vectors commits: the
// file again with its new DV, and a remove of it with its old DV, in the
// given order.
func deleteWithDV(t *testing.T, tb *Table, rows []uint64, removeFirst bool) {
	t.Helper()
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	f := snap.Files()[0]
	old := f.DeletionVector
	f.DeletionVector = inlineDV(rows)
	rm := &RemoveFile{Path: f.Path, DataChange: true, DeletionVector: old}
	add := action{Add: &f}
	acts := []action{add, {Remove: rm}}
	if removeFirst {
		acts = []action{{Remove: rm}, add}
	}
	writeCommit(t, tb, acts...)
}

func readIDs(t *testing.T, store Storage) []int64 {
	t.Helper()
	tb, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, r := range rows {
		ids = append(ids, r["id"].(int64))
	}
	slices.Sort(ids)
	return ids
}

func idsExcept(n int, del ...int64) []int64 {
	var out []int64
	for i := int64(0); i < int64(n); i++ {
		if !slices.Contains(del, i) {
			out = append(out, i)
		}
	}
	return out
}

// A commit or checkpoint that holds an add of a file and removes of it
// (the Databricks 12.2 table read as empty) reads the add: logical files
// are keyed by (path, DV id), and one commit's actions are not ordered.
func TestReconcileAddAndRemoveOfOnePath(t *testing.T) {
	for _, removeFirst := range []bool{false, true} {
		tb, store := dvTestTable(t, 98, nil, nil)
		deleteWithDV(t, tb, []uint64{3}, removeFirst)         // add (p, dv1), remove (p, NULL)
		deleteWithDV(t, tb, []uint64{3, 40, 97}, removeFirst) // add (p, dv2), remove (p, dv1)
		want := idsExcept(98, 3, 40, 97)
		if got := readIDs(t, store); !slices.Equal(got, want) {
			t.Fatalf("removeFirst=%v: read %d rows, want %d", removeFirst, len(got), len(want))
		}
		snap, err := tb.Snapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n := len(snap.Tombstones()); n != 2 {
			t.Fatalf("%d tombstones, want (p, NULL) and (p, dv1)", n)
		}
		// The checkpoint holds add (p, dv2) and removes (p, NULL), (p, dv1).
		if err := tb.Checkpoint(t.Context(), snap); err != nil {
			t.Fatal(err)
		}
		fresh, err := Open(t.Context(), store)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := fresh.Snapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if fs.checkpointVersion != snap.Version() {
			t.Fatalf("replay did not start at the checkpoint")
		}
		assertSameState(t, snap, fs)
		if got := readIDs(t, store); !slices.Equal(got, want) {
			t.Fatalf("from checkpoint: read %d rows, want %d", len(got), len(want))
		}
		if d := Describe("", fs); d.NumRows != int64(len(want)) {
			t.Fatalf("describe: %d rows, want %d", d.NumRows, len(want))
		}
	}
}

// An add and a remove of the same (path, DV) in one commit, or in one
// checkpoint, which PROTOCOL.md forbids, keep the file.
func TestReconcileSameKeyAddAndRemove(t *testing.T) {
	tb, store := dvTestTable(t, 10, nil, nil)
	deleteWithDV(t, tb, []uint64{1}, false)
	snap, _ := tb.Snapshot(t.Context())
	f := snap.Files()[0]
	same := &RemoveFile{Path: f.Path, DataChange: true, DeletionVector: f.DeletionVector}
	writeCommit(t, tb, action{Remove: same}, action{Add: &f})
	if got := readIDs(t, store); !slices.Equal(got, idsExcept(10, 1)) {
		t.Fatalf("commit with add and remove of one key: read %v", got)
	}
	// A checkpoint holding both.
	snap, _ = tb.Snapshot(t.Context())
	bad := snap.clone()
	bad.tombstones[tombstoneKey(StorageKey(f.Path), dvKey(f.DeletionVector))] = same
	if err := tb.Checkpoint(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	if got := readIDs(t, store); !slices.Equal(got, idsExcept(10, 1)) {
		t.Fatalf("checkpoint with add and remove of one key: read %v", got)
	}
}

// A table with deletion vectors takes appends: the DVs stay through replay
// and checkpoints, appended rows all read, the protocol is unchanged.
func TestDVTableAppendCheckpointReread(t *testing.T) {
	tb, store := dvTestTable(t, 20, nil, nil)
	deleteWithDV(t, tb, []uint64{0, 19}, false)
	before, _ := tb.Snapshot(t.Context())
	for i := range 3 {
		if _, err := tb.Append(t.Context(), idRows(100+i*10, 110+i*10), AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	snap, _ := tb.Snapshot(t.Context())
	if err := tb.Checkpoint(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Append(t.Context(), idRows(200, 205), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	want := append(idsExcept(20, 0, 19), []int64{100, 101, 102, 103, 104, 105, 106, 107, 108, 109}...)
	for i := int64(110); i < 130; i++ {
		want = append(want, i)
	}
	want = append(want, 200, 201, 202, 203, 204)
	if got := readIDs(t, store); !slices.Equal(got, want) {
		t.Fatalf("read %v\nwant %v", got, want)
	}
	after, _ := tb.Snapshot(t.Context())
	if !slices.Equal(after.Protocol().ReaderFeatures, before.Protocol().ReaderFeatures) || after.Protocol().MinReaderVersion != 3 {
		t.Fatalf("protocol changed: %+v", after.Protocol())
	}
	var dvs int
	for _, f := range after.Files() {
		if len(f.DeletionVector) > 0 {
			dvs++
		}
	}
	if dvs != 1 {
		t.Fatalf("%d files with a DV, want the one DELETE wrote (appends never write one)", dvs)
	}
	data, err := os.ReadFile(filepath.Join(store.Location(), "_delta_log", "00000000000000000005.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "deletionVector") {
		t.Fatal("an append wrote a deletionVector")
	}
}

// DVs in files: "u" (a random prefix and a Z85 UUID) and "p" (an absolute
// path), two DVs in one file at their offsets; a bad checksum is a
// corrupt log, not wrong rows.
func TestDVFiles(t *testing.T) {
	tb, store := dvTestTable(t, 10, nil, nil)
	a, b := encodeTestBitmap([]uint64{0, 9}, false), encodeTestBitmap([]uint64{4}, false)
	file := []byte{1}
	offA := int32(len(file))
	for _, bm := range [][]byte{a, b} {
		file = binary.BigEndian.AppendUint32(file, uint32(len(bm)))
		file = append(file, bm...)
		file = binary.BigEndian.AppendUint32(file, crc32.ChecksumIEEE(bm))
	}
	offB := offA + 4 + int32(len(a)) + 4
	uuid := []byte{0xd2, 0xc6, 0x39, 0xaa, 0x88, 0x16, 0x43, 0x1a, 0xaa, 0xf6, 0xd3, 0xfe, 0x25, 0x12, 0xff, 0x61}
	name := filepath.Join(store.Location(), "ab", "deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin")
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, file, 0o644); err != nil {
		t.Fatal(err)
	}
	snap, _ := tb.Snapshot(t.Context())
	f := snap.Files()[0]
	for _, c := range []struct {
		dv   DeletionVector
		want []int64
	}{
		{DeletionVector{StorageType: "u", PathOrInlineDv: "ab" + z85Encode(uuid), Offset: &offA, SizeInBytes: int32(len(a)), Cardinality: 2}, idsExcept(10, 0, 9)},
		{DeletionVector{StorageType: "p", PathOrInlineDv: "file://" + name, Offset: &offB, SizeInBytes: int32(len(b)), Cardinality: 1}, idsExcept(10, 4)},
	} {
		g := f
		g.DeletionVector, _ = json.Marshal(c.dv)
		rows, err := ReadFile(t.Context(), store, snap, g)
		if err != nil {
			t.Fatalf("%s: %v", c.dv.StorageType, err)
		}
		var ids []int64
		for _, r := range rows {
			ids = append(ids, r["id"].(int64))
		}
		if !slices.Equal(ids, c.want) {
			t.Fatalf("%s: %v, want %v", c.dv.StorageType, ids, c.want)
		}
	}
	file[offA+5] ^= 0xFF
	if err := os.WriteFile(name, file, 0o644); err != nil {
		t.Fatal(err)
	}
	g := f
	g.DeletionVector, _ = json.Marshal(DeletionVector{StorageType: "u", PathOrInlineDv: "ab" + z85Encode(uuid), Offset: &offA, SizeInBytes: int32(len(a)), Cardinality: 2})
	if _, err := ReadFile(t.Context(), store, snap, g); !errors.Is(err, ErrCorruptLog) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("bad checksum: %v", err)
	}
	// A wrong cardinality is refused too.
	g.DeletionVector = inlineDV([]uint64{1, 2})
	g.DeletionVector = []byte(strings.Replace(string(g.DeletionVector), `"cardinality":2`, `"cardinality":3`, 1))
	if _, err := ReadFile(t.Context(), store, snap, g); !errors.Is(err, ErrCorruptLog) {
		t.Fatalf("wrong cardinality: %v", err)
	}
}
