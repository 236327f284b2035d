package delta

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

// featureDef is a small table with the given properties.
func featureDef(props map[string]string) TableDef {
	return TableDef{
		Name: "features",
		Schema: &StructType{Fields: []*StructField{
			{Name: "id", Type: TypeLong, Nullable: false},
			{Name: "kind", Type: TypeString, Nullable: true},
			{Name: "at", Type: TypeTimestampNTZ, Nullable: true},
			{Name: "day", Type: TypeInteger, Nullable: true},
		}},
		PartitionColumns: []string{"day"},
		Properties:       props,
	}
}

func featureRows(from, n int) []map[string]any {
	var rows []map[string]any
	for i := from; i < from+n; i++ {
		rows = append(rows, map[string]any{
			"id": int64(i), "kind": fmt.Sprintf("k%d", i%3),
			"at":  time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC),
			"day": int32(i % 2),
		})
	}
	return rows
}

// logEntry reads the actions of commit version v as raw JSON objects.
func logEntry(t *testing.T, dir string, v int64) []map[string]json.RawMessage {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "_delta_log", fmt.Sprintf("%020d.json", v)))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// checkRowTracking checks PROTOCOL.md's row tracking rules on snapshot s:
// every file has a baseRowId and defaultRowCommitVersion, the row id
// ranges of the files are disjoint, and the high-water mark is at least the
// highest id.
func checkRowTracking(t *testing.T, s *Snapshot) {
	t.Helper()
	type rng struct{ lo, hi int64 }
	var rs []rng
	for _, f := range s.Files() {
		if f.BaseRowID == nil || f.DefaultRowCommitVersion == nil {
			t.Fatalf("file %s: baseRowId %v defaultRowCommitVersion %v", f.Path, f.BaseRowID, f.DefaultRowCommitVersion)
		}
		n, _ := f.NumRecords()
		rs = append(rs, rng{*f.BaseRowID, *f.BaseRowID + n - 1})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].lo < rs[j].lo })
	for i := 1; i < len(rs); i++ {
		if rs[i].lo <= rs[i-1].hi {
			t.Fatalf("row id ranges overlap: %v", rs)
		}
	}
	hwm, err := rowIDHighWaterMark(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) > 0 && hwm < rs[len(rs)-1].hi {
		t.Fatalf("high-water mark %d below row id %d", hwm, rs[len(rs)-1].hi)
	}
}

// TestCreateWithFeatures: each feature property gives the protocol Delta
// gives it, and the table survives appends, a checkpoint and a reread with
// the feature's rules kept.
func TestCreateWithFeatures(t *testing.T) {
	cases := []struct {
		props            map[string]string
		reader, writer   []string
		minReader        int
		extraConfig      []string
		rowTracking, ict bool
	}{
		{props: map[string]string{"delta.columnMapping.mode": "name"}, reader: []string{"columnMapping", "timestampNtz"}, writer: []string{"columnMapping", "timestampNtz"}, minReader: 3, extraConfig: []string{propMaxColumnID}},
		{props: map[string]string{"delta.columnMapping.mode": "id"}, reader: []string{"columnMapping"}, writer: []string{"columnMapping"}, minReader: 3, extraConfig: []string{propMaxColumnID}},
		{props: map[string]string{"delta.enableRowTracking": "true"}, writer: []string{"rowTracking", "domainMetadata"}, minReader: 3, extraConfig: []string{propRowIDColumn, propRowVersionColumn}, rowTracking: true},
		{props: map[string]string{"delta.enableInCommitTimestamps": "true"}, writer: []string{"inCommitTimestamp"}, minReader: 3, ict: true},
		{props: map[string]string{"delta.enableTypeWidening": "true"}, reader: []string{"typeWidening"}, writer: []string{"typeWidening"}, minReader: 3},
		{props: map[string]string{"delta.columnMapping.mode": "name", "delta.enableRowTracking": "true", "delta.enableInCommitTimestamps": "true", "delta.enableChangeDataFeed": "true"},
			reader: []string{"columnMapping"}, writer: []string{"columnMapping", "rowTracking", "inCommitTimestamp", "changeDataFeed", "domainMetadata"}, minReader: 3, rowTracking: true, ict: true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.props), func(t *testing.T) {
			dir := t.TempDir()
			store, _ := NewLocalStorage(dir)
			tb, err := Create(t.Context(), store, featureDef(c.props), WithSyncCheckpoints(), WithCheckpointInterval(3))
			if err != nil {
				t.Fatal(err)
			}
			s0, _ := tb.Snapshot(t.Context())
			p := s0.Protocol()
			if p.MinWriterVersion != 7 || p.MinReaderVersion != c.minReader {
				t.Fatalf("protocol %+v", p)
			}
			for _, f := range c.reader {
				if !slices.Contains(p.ReaderFeatures, f) {
					t.Errorf("reader features %v lack %s", p.ReaderFeatures, f)
				}
			}
			for _, f := range c.writer {
				if !slices.Contains(p.WriterFeatures, f) {
					t.Errorf("writer features %v lack %s", p.WriterFeatures, f)
				}
			}
			for _, k := range c.extraConfig {
				if s0.Metadata().Configuration[k] == "" {
					t.Errorf("configuration lacks %s: %v", k, s0.Metadata().Configuration)
				}
			}
			var want []map[string]any
			for c := range 4 {
				rows := featureRows(c*10, 10)
				if _, err := tb.Append(t.Context(), rows, AppendOptions{}); err != nil {
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
			if s.CheckpointVersion() < 3 {
				t.Fatalf("no checkpoint: %d", s.CheckpointVersion())
			}
			if !slicesEqualProtocol(s.Protocol(), p) {
				t.Fatalf("protocol changed: %+v, was %+v", s.Protocol(), p)
			}
			rows, err := ReadRows(t.Context(), store, s)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				want[i], _ = CoerceRow(s.Schema(), want[i])
			}
			assertRows(t, rows, want)
			if mode := mappingMode(s); mode != "" {
				for _, f := range s.Files() {
					checkFeatureFile(t, dir, s, f)
				}
			}
			if c.rowTracking {
				checkRowTracking(t, s)
				for _, f := range s.Files() {
					if v := *f.DefaultRowCommitVersion; v < 1 || v > 4 {
						t.Fatalf("defaultRowCommitVersion %d", v)
					}
				}
			}
			if c.ict {
				checkICT(t, dir, s.Version())
			}
		})
	}
}

func slicesEqualProtocol(a, b Protocol) bool {
	return a.MinReaderVersion == b.MinReaderVersion && a.MinWriterVersion == b.MinWriterVersion &&
		slices.Equal(a.ReaderFeatures, b.ReaderFeatures) && slices.Equal(a.WriterFeatures, b.WriterFeatures)
}

// checkICT: every commit 0..last has commitInfo first with an
// inCommitTimestamp, strictly increasing.
func checkICT(t *testing.T, dir string, last int64) {
	t.Helper()
	prev := int64(-1)
	for v := int64(0); v <= last; v++ {
		acts := logEntry(t, dir, v)
		ci, ok := acts[0]["commitInfo"]
		if !ok {
			t.Fatalf("version %d: first action is not commitInfo: %v", v, acts[0])
		}
		var c struct {
			ICT *int64 `json:"inCommitTimestamp"`
		}
		if err := json.Unmarshal(ci, &c); err != nil || c.ICT == nil {
			t.Fatalf("version %d: commitInfo without inCommitTimestamp: %s", v, ci)
		}
		if *c.ICT <= prev {
			t.Fatalf("version %d: inCommitTimestamp %d not after %d", v, *c.ICT, prev)
		}
		prev = *c.ICT
	}
}

// TestInCommitTimestampMonotonic: a previous commit timestamp ahead of the
// clock gives the next commit that timestamp + 1 ms.
func TestInCommitTimestampMonotonic(t *testing.T) {
	md := &Metadata{Configuration: map[string]string{propEnableICT: "true"}}
	base := &Snapshot{version: 5, protocol: &Protocol{MinReaderVersion: 3, MinWriterVersion: 7, WriterFeatures: []string{"inCommitTimestamp"}}, metadata: md, domains: map[string]DomainMetadata{}}
	now := time.UnixMilli(1_000_000)
	base.timestamp = now.Add(time.Hour)
	acts := []action{{Txn: &Txn{AppID: "a", Version: 1}}, {CommitInfo: map[string]any{"operation": "WRITE"}}}
	out, err := stampCommit(base, 6, acts, now)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].CommitInfo == nil || out[0].CommitInfo["inCommitTimestamp"] != json.Number(strconv.FormatInt(base.timestamp.UnixMilli()+1, 10)) {
		t.Fatalf("first action %+v", out[0])
	}
	if len(out) != 2 || out[1].Txn == nil || acts[1].CommitInfo["inCommitTimestamp"] != nil {
		t.Fatalf("actions %+v (input modified: %v)", out, acts[1].CommitInfo)
	}
	base.timestamp = now.Add(-time.Hour)
	out, _ = stampCommit(base, 6, acts, now)
	if out[0].CommitInfo["inCommitTimestamp"] != json.Number(strconv.FormatInt(now.UnixMilli(), 10)) {
		t.Fatalf("ICT %v, want the clock", out[0].CommitInfo["inCommitTimestamp"])
	}
}

// TestRowTrackingConcurrentWriters: writers racing for versions each
// recompute their row ids on the retry, so no two files share a row id and
// the high-water mark covers them all.
func TestRowTrackingConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	store, _ := NewLocalStorage(dir)
	tb, err := Create(t.Context(), store, featureDef(map[string]string{"delta.enableRowTracking": "true", "delta.enableInCommitTimestamps": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	tb.Close(t.Context())
	const writers, commits = 4, 6
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wt, err := Open(t.Context(), store, WithCheckpointInterval(1000))
			if err != nil {
				errs <- err
				return
			}
			defer wt.Close(t.Context())
			for c := range commits {
				if _, err := wt.Append(t.Context(), featureRows(w*1000+c*10, 3+w), AppendOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	re, _ := Open(t.Context(), store)
	s, _ := re.Snapshot(t.Context())
	if s.Version() != writers*commits {
		t.Fatalf("version %d", s.Version())
	}
	checkRowTracking(t, s)
	for _, f := range s.Files() {
		// defaultRowCommitVersion is the version whose log entry adds f.
		found := false
		for _, a := range logEntry(t, dir, *f.DefaultRowCommitVersion) {
			if raw, ok := a["add"]; ok {
				var add AddFile
				_ = json.Unmarshal(raw, &add)
				found = found || add.Path == f.Path
			}
		}
		if !found {
			t.Fatalf("file %s not added by version %d", f.Path, *f.DefaultRowCommitVersion)
		}
	}
	checkICT(t, dir, s.Version())
}

// TestClusteredTableAppend: on a clustered table (as Databricks creates
// with CLUSTER BY, row tracking on) appends keep the delta.clustering
// domain and write stats for the clustering columns even past
// delta.dataSkippingNumIndexedCols.
func TestClusteredTableAppend(t *testing.T) {
	dir := t.TempDir()
	store, _ := NewLocalStorage(dir)
	tb, err := Create(t.Context(), store, featureDef(map[string]string{"delta.enableRowTracking": "true", "delta.dataSkippingNumIndexedCols": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	s0, _ := tb.Snapshot(t.Context())
	p := s0.Protocol()
	p.WriterFeatures = append(slices.Clone(p.WriterFeatures), "clustering")
	pj, _ := json.Marshal(map[string]any{"protocol": p})
	entry := string(pj) + "\n" + `{"domainMetadata":{"domain":"delta.clustering","configuration":"{\"clusteringColumns\":[[\"at\"]]}","removed":false}}` + "\n" +
		`{"commitInfo":{"operation":"CLUSTER BY"}}` + "\n"
	if err := store.PutIfAbsent(t.Context(), commitKey(1), []byte(entry)); err != nil {
		t.Fatal(err)
	}
	tb.Close(t.Context())
	tb, err = Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Append(t.Context(), featureRows(0, 5), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	s, _ := tb.Snapshot(t.Context())
	if got := clusteringColumns(s); len(got) != 1 || got[0][0] != "at" {
		t.Fatalf("clustering domain %v", s.domains)
	}
	for _, f := range s.Files() {
		var st struct {
			Min map[string]any `json:"minValues"`
		}
		_ = json.Unmarshal([]byte(f.Stats), &st)
		if _, ok := st.Min["at"]; !ok {
			t.Fatalf("no stats for clustering column at: %s", f.Stats)
		}
		if _, ok := st.Min["kind"]; ok {
			t.Fatalf("stats past dataSkippingNumIndexedCols: %s", f.Stats)
		}
	}
	checkRowTracking(t, s)
}
