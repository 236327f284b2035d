package delta

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// chunkLayout is what one column chunk of a file is made of.
type chunkLayout struct {
	path      string
	encodings []string
	pages     []format.PageType
}

// fileLayout reads the page headers of every column chunk of a Parquet
// file.
func fileLayout(t *testing.T, data []byte) []chunkLayout {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []chunkLayout
	for _, rg := range f.Metadata().RowGroups {
		for _, cc := range rg.Columns {
			md := cc.MetaData
			l := chunkLayout{path: strings.Join(md.PathInSchema, ".")}
			for _, e := range md.Encoding {
				l.encodings = append(l.encodings, e.String())
			}
			off := md.DataPageOffset
			if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < off {
				off = md.DictionaryPageOffset
			}
			end := off + md.TotalCompressedSize
			for off < end {
				var h format.PageHeader
				r := bytes.NewReader(data[off:end])
				if err := thrift.NewDecoder(new(thrift.CompactProtocol).NewReader(r)).Decode(&h); err != nil {
					t.Fatalf("%s: page header at %d: %v", l.path, off, err)
				}
				hlen := int64(len(data[off:end])) - int64(r.Len())
				l.pages = append(l.pages, h.Type)
				off += hlen + int64(h.CompressedPageSize)
			}
			out = append(out, l)
		}
	}
	return out
}

// TestParquetPagesV1Dictionary: data files and checkpoints are DataPage V1;
// low-cardinality columns are dictionary encoded, unique ones PLAIN, and no
// column uses DELTA_LENGTH_BYTE_ARRAY.
func TestParquetPagesV1Dictionary(t *testing.T) {
	tb, store := newSpecTable(t, WithCheckpointInterval(2))
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	for c := range 2 {
		var rows []map[string]any
		for i := range 2000 {
			rows = append(rows, specRow(0, c*10000+i, ts))
		}
		if _, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
	tb.Close(t.Context())
	dir := store.Location()
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".parquet") {
			files = append(files, p)
		}
		return nil
	})
	checkpoints := 0
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		isCheckpoint := strings.Contains(p, "checkpoint")
		if isCheckpoint {
			checkpoints++
		}
		byPath := map[string]chunkLayout{}
		for _, l := range fileLayout(t, data) {
			byPath[l.path] = l
			for _, pt := range l.pages {
				if pt == format.DataPageV2 {
					t.Errorf("%s: column %s has a DataPage V2", filepath.Base(p), l.path)
				}
			}
			if slices.Contains(l.encodings, "DELTA_LENGTH_BYTE_ARRAY") {
				t.Errorf("%s: column %s: encodings %v", filepath.Base(p), l.path, l.encodings)
			}
		}
		if isCheckpoint {
			continue
		}
		for col, wantDict := range map[string]bool{"event_type": true, "task_status": true, "task_name": true, "event_id": false, "assignment_id": false} {
			l, ok := byPath[col]
			if !ok {
				t.Fatalf("%s: no column %s", filepath.Base(p), col)
			}
			hasDict := slices.Contains(l.pages, format.DictionaryPage)
			if hasDict != wantDict || slices.Contains(l.encodings, "RLE_DICTIONARY") != wantDict {
				t.Errorf("%s: column %s: dictionary %v (pages %v, encodings %v), want %v", filepath.Base(p), col, hasDict, l.pages, l.encodings, wantDict)
			}
		}
	}
	if checkpoints == 0 || len(files) < 3 {
		t.Fatalf("%d parquet files, %d checkpoints", len(files), checkpoints)
	}
	// Everything reads back.
	tb2, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := tb2.Snapshot(t.Context())
	rows, err := ReadRows(t.Context(), store, snap)
	if err != nil || len(rows) != 4000 {
		t.Fatalf("read %d rows, %v", len(rows), err)
	}
}
