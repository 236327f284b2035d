package delta

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Every file and folder a table writes on local storage has the storage's
// modes: 0640 and 0750 by default, whatever the umask, or the ones the
// options give.
func TestLocalStorageModes(t *testing.T) {
	// A umask that would take the group's bits: the modes must not
	// depend on it. (No test of this package runs in parallel with this
	// one: the parallel ones start after the sequential ones.)
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	for _, tc := range []struct {
		name            string
		opts            []StorageOption
		file, dir       fs.FileMode
		throughLocation bool
	}{
		{"default", nil, 0o640, 0o750, false},
		{"default through OpenLocation", nil, 0o640, 0o750, true},
		{"configured", []StorageOption{WithFileMode(0o600), WithDirMode(0o700)}, 0o600, 0o700, true},
		{"group-writable", []StorageOption{WithFileMode(0o660), WithDirMode(0o770)}, 0o660, 0o770, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The table's folder and its parent do not exist yet.
			root := filepath.Join(t.TempDir(), "data", "table")
			var store Storage
			var err error
			if tc.throughLocation {
				store, err = OpenLocationWith("file://"+root, tc.opts...)
			} else {
				store, err = NewLocalStorage(root, tc.opts...)
			}
			if err != nil {
				t.Fatal(err)
			}
			def, err := LoadTableDef(specTableDef)
			if err != nil {
				t.Fatal(err)
			}
			tb, err := Create(t.Context(), store, def, WithCheckpointInterval(2), WithSyncCheckpoints())
			if err != nil {
				t.Fatal(err)
			}
			ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
			for i := range 3 {
				if _, err := tb.Append(t.Context(), []map[string]any{specRow(1, i, ts.AddDate(0, 0, i))}, AppendOptions{SchemaEvolution: true, Txns: []Txn{{AppID: "w", Version: int64(i)}}}); err != nil {
					t.Fatal(err)
				}
			}
			var files, dirs, checkpoints int
			err = filepath.WalkDir(filepath.Dir(root), func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				info, err := d.Info()
				if err != nil {
					return err
				}
				want := tc.file
				if d.IsDir() {
					want = tc.dir
					dirs++
				} else {
					files++
					if filepath.Ext(p) == ".parquet" && filepath.Base(filepath.Dir(p)) == "_delta_log" {
						checkpoints++
					}
				}
				if got := info.Mode().Perm(); got != want {
					t.Errorf("%s: mode %v, want %v", p, got, want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// data, table, _delta_log and year=/month=/day= folders; log
			// entries, a checkpoint, _last_checkpoint and data files.
			if dirs < 6 || files < 6 || checkpoints == 0 {
				t.Fatalf("walked %d folders, %d files, %d checkpoints: the table is not what the test means to check", dirs, files, checkpoints)
			}
		})
	}
}
