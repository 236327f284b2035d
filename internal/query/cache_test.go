package query

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"kpipe/internal/s3test"
)

// uploadDir copies a local table folder to the server under prefix.
func uploadDir(t *testing.T, srv *s3test.Server, dir, prefix string) {
	t.Helper()
	c := srv.Client(nil)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &srv.Bucket, Key: aws.String(prefix + "/" + filepath.ToSlash(rel)), Body: bytes.NewReader(b)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// cachedFiles lists the regular files under dir.
func cachedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// A table on S3 reads through the local cache: the same rows as the table
// read in place; only the snapshot's files fetched (an orphan next to them
// is not); a second run fetches nothing; a cached file of the wrong size
// is fetched again; a file no snapshot has used for long is deleted.
func TestOpenS3ThroughCache(t *testing.T) {
	f := newFixture(t)
	srv := s3test.Start(t)
	srv.SetEnv(t)
	const prefix = "q/delta/itel_cabinet_task_tracking"
	uploadDir(t, srv, f.dir, prefix)
	// An orphan data file (a lost race's) that no snapshot references.
	if _, err := srv.Client(nil).PutObject(t.Context(), &s3.PutObjectInput{Bucket: &srv.Bucket, Key: aws.String(prefix + "/year=2026/orphan.parquet"), Body: strings.NewReader("not parquet")}); err != nil {
		t.Fatal(err)
	}
	loc := srv.URL(prefix)
	cache := t.TempDir()
	ctx := t.Context()

	const q = "SELECT event_id, task_status, year, month, day FROM itel_cabinet_task_tracking ORDER BY event_id"
	local, err := Open(ctx, f.dir)
	if err != nil {
		t.Fatal(err)
	}
	_, want := fetch(t, local, q)
	local.Close()

	db, err := Open(ctx, loc, WithCacheDir(cache))
	if err != nil {
		t.Fatalf("Open %s: %v", loc, err)
	}
	if db.View() != "itel_cabinet_task_tracking" {
		t.Fatalf("view %q", db.View())
	}
	_, got := fetch(t, db, q)
	st := db.Cache()
	db.Close()
	checkRows(t, "rows through the cache", got, want)
	if len(got) != len(f.rows) {
		t.Fatalf("%d rows, want %d", len(got), len(f.rows))
	}
	if st.Fetched != db.NumFiles() || st.Reused != 0 || st.FetchedBytes == 0 || db.NumFiles() == 0 {
		t.Fatalf("first run: %+v for %d files, want all fetched", st, db.NumFiles())
	}
	files := cachedFiles(t, cache)
	if len(files) != db.NumFiles() {
		t.Fatalf("cache holds %d files, want the snapshot's %d: %v", len(files), db.NumFiles(), files)
	}
	for _, p := range files {
		if strings.Contains(p, "orphan") || strings.Contains(p, "_delta_log") {
			t.Fatalf("cached %s: not a file of the snapshot", p)
		}
	}

	db, err = Open(ctx, loc, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if st := db.Cache(); st.Fetched != 0 || st.Reused != db.NumFiles() {
		t.Fatalf("second run: %+v, want every file reused", st)
	}
	db.Close()

	// A cached file cut short is fetched again; a stale unused file goes.
	if err := os.WriteFile(files[0], []byte("cut"), 0o640); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(filepath.Dir(files[0]), "part-stale.parquet")
	if err := os.WriteFile(stale, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * cacheKeep)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	db, err = Open(ctx, loc, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	_, got = fetch(t, db, q)
	st = db.Cache()
	db.Close()
	checkRows(t, "rows after a refetch", got, want)
	if st.Fetched != 1 || st.Reused != db.NumFiles()-1 {
		t.Fatalf("after cutting a cached file: %+v, want 1 fetched", st)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale cached file kept: %v", err)
	}

	// Another location (another endpoint of the same bucket) has a folder
	// of its own.
	if a, b := tableCacheDir(cache, loc), tableCacheDir(cache, "s3://"+srv.Bucket+"/"+prefix); a == b {
		t.Fatalf("two locations share the cache folder %s", a)
	}
}
