package cli

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"kpipe/internal/query"
	"kpipe/internal/s3test"
	"kpipe/internal/sim"
)

// upS3EventsEnv sets TestUpOnS3's event count (default 3000, so that the
// race detector's run stays short); KPIPE_TEST_S3_UP_EVENTS=20000 runs the
// issue's figure.
const upS3EventsEnv = "KPIPE_TEST_S3_UP_EVENTS"

// kpipe up --events N --seed 6 --data s3://bucket/prefix on a real S3
// server (endpoint and path style from the environment, as a user sets
// them): the table, copied down object by object into a folder, read by
// the table library and by DuckDB, holds exactly the tracked events of the
// run's manifest; kpipe query and kpipe report read it on S3 through the
// local cache.
func TestUpOnS3(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	events := 3000
	if v := os.Getenv(upS3EventsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive count", upS3EventsEnv, v)
		}
		events = n
	}
	srv := s3test.Start(t)
	srv.SetEnv(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	t.Setenv("KPIPE_S3_FORCE_PATH_STYLE", "1")
	data := "s3://" + srv.Bucket + "/runs/one"
	local := t.TempDir()
	start := time.Now()
	code, out, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "--log-level", "warn",
		"up", "--events", strconv.Itoa(events), "--seed", "6", "--data", data, "--local-data", local,
		"--kafka-port", "0", "--metrics-addr", "127.0.0.1:0")
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("kpipe up --events %d on S3: %v", events, time.Since(start).Round(100*time.Millisecond))
	for _, l := range lines(out) {
		if strings.Contains(l, "events in") || strings.Contains(l, "OK:") || strings.HasPrefix(strings.TrimSpace(l), "rows") {
			t.Log(strings.TrimSpace(l))
		}
	}
	const table = "runs/one/delta/itel_cabinet_task_tracking"
	for _, want := range []string{"OK: the table holds every tracked event exactly once", "s3://" + srv.Bucket + "/" + table} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The broker's data and the lock are local.
	for _, p := range []string{filepath.Join(local, "kafka"), filepath.Join(local, upLockFile)} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("local state: %v", err)
		}
	}

	// The manifest's tracked events among the run's first N.
	world := sim.New(sim.Options{Seed: 6, Events: max(events, 5000), Token: "x"})
	first := map[string]bool{}
	for i, e := range world.Events() {
		if i < events {
			first[e.EventID] = true
		}
	}
	want := map[string]sim.ManifestEntry{}
	for _, e := range world.Manifest().EventsForTemplate(sim.TemplateITelCabinet) {
		if first[e.EventID] {
			want[e.EventID] = e
		}
	}
	if len(want) == 0 {
		t.Fatal("the world has no tracked events")
	}

	dir := copyDown(t, srv, table)
	rows, err := tableRows(t.Context(), dir)
	if err != nil {
		t.Fatalf("reading the copied table: %v", err)
	}
	checkIDs := func(how string, ids []string) {
		t.Helper()
		seen := map[string]int{}
		for _, id := range ids {
			seen[id]++
		}
		for id := range want {
			if seen[id] != 1 {
				t.Errorf("%s: event %s: %d rows, want 1", how, id, seen[id])
			}
		}
		if len(ids) != len(want) {
			t.Fatalf("%s: %d rows, want the manifest's %d", how, len(ids), len(want))
		}
	}
	var ids []string
	for _, r := range rows {
		id, _ := r["event_id"].(string)
		if e, ok := want[id]; ok && (r["task_status"] != e.Status || r["event_type"] != e.EventType) {
			t.Fatalf("row %s: status %v type %v, want %s %s", id, r["task_status"], r["event_type"], e.Status, e.EventType)
		}
		ids = append(ids, id)
	}
	checkIDs("table library", ids)

	db, err := query.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	qr, err := db.Query(t.Context(), "SELECT event_id FROM itel_cabinet_task_tracking")
	if err != nil {
		t.Fatal(err)
	}
	ids = nil
	for qr.Next() {
		var id string
		if err := qr.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	qr.Close()
	db.Close()
	checkIDs("DuckDB", ids)

	// kpipe query and kpipe report on S3 itself, through the cache.
	cache := t.TempDir()
	loc := "s3://" + srv.Bucket + "/" + table
	code, out, errOut = runCLI(t, nil, "query", "--table", loc, "--cache-dir", cache, "--format", "csv",
		"SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM itel_cabinet_task_tracking")
	if n := strconv.Itoa(len(want)); code != ExitOK || !strings.Contains(out, n+","+n) {
		t.Fatalf("kpipe query on S3: exit %d, want %s rows\n%s\n%s", code, n, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", loc, "--cache-dir", cache, "--format", "json", "--as-of", "2026-03-01T00:00:00Z")
	if code != ExitOK || !strings.Contains(out, `"table_version"`) {
		t.Fatalf("kpipe report on S3: exit %d\n%s\n%s", code, out, errOut)
	}
}

// copyDown copies every object under prefix into a new folder, as a user
// would with aws s3 cp --recursive, and returns it.
func copyDown(t *testing.T, srv *s3test.Server, prefix string) string {
	t.Helper()
	ctx := context.Background()
	c := srv.Client(nil)
	dir := filepath.Join(t.TempDir(), filepath.Base(prefix))
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &srv.Bucket, Prefix: aws.String(prefix + "/")})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &srv.Bucket, Key: &key})
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(key, prefix+"/")))
			if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(dst)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.ReadFrom(got.Body); err != nil {
				t.Fatal(err)
			}
			got.Body.Close()
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no objects under %s", prefix)
	}
	return dir
}

// kpipe up's local state: --local-data, else a local --data, else a
// folder under data/s3 named after the bucket and prefix.
func TestUpLocalDir(t *testing.T) {
	for _, tc := range []struct {
		data, local, want string
	}{
		{"data", "", "data"},
		{"/srv/kpipe", "", "/srv/kpipe"},
		{"s3://b/p/q?endpoint=http://127.0.0.1:9000", "", filepath.Join("data", "s3", "b", "p", "q")},
		{"s3://b", "", filepath.Join("data", "s3", "b")},
		{"s3://b/../../etc", "", filepath.Join("data", "s3", "b", "etc")},
		{"s3://b/p", "/var/lib/kpipe", "/var/lib/kpipe"},
	} {
		got, err := upLocalDir(upOptions{dataDir: tc.data, localData: tc.local})
		if err != nil || got != tc.want {
			t.Errorf("upLocalDir(--data %s --local-data %q) = %q, %v; want %q", tc.data, tc.local, got, err, tc.want)
		}
	}
	if _, err := upLocalDir(upOptions{dataDir: "s3:///p"}); err == nil {
		t.Error("s3:///p: no error")
	}
}
