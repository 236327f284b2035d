package delta

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// recoverTable is a table of commits 1..n (one file each) with a
// checkpoint every 10.
func recoverTable(t *testing.T, n int) (*Table, *memStorage) {
	t.Helper()
	store := newMemStorage()
	tb := createSpecTable(t, store, WithSyncCheckpoints(), WithCheckpointInterval(10))
	for c := 1; c <= n; c++ {
		if _, err := tb.Append(t.Context(), []map[string]any{specRow(1, c, time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC))}, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
	return tb, store
}

// checkReads opens the table afresh and checks its latest version, files
// and rows, and the version at.
func checkReads(t *testing.T, store Storage, version int64, at int64) {
	t.Helper()
	tb, err := Open(t.Context(), store, WithCheckpointInterval(10))
	if err != nil {
		t.Fatal(err)
	}
	s, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(t.Context(), store, s)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() != version || s.NumFiles() != int(version) || len(rows) != int(version) {
		t.Fatalf("version %d, %d files, %d rows; want %d of each", s.Version(), s.NumFiles(), len(rows), version)
	}
	old, err := tb.SnapshotAt(t.Context(), at)
	if err != nil || old.NumFiles() != int(at) {
		t.Fatalf("version %d: %v", at, err)
	}
}

// A torn checkpoint (here the newest, which _last_checkpoint names) is
// passed over: readers use the one before it, or the commits.
func TestTornCheckpointIsIgnored(t *testing.T) {
	tb, store := recoverTable(t, 25)
	tear(t, store, checkpointKey(20))
	checkReads(t, store, 25, 22)
	tear(t, store, checkpointKey(10))
	checkReads(t, store, 25, 12)
	// A writer goes on, and the next checkpoint is whole.
	for c := 26; c <= 30; c++ {
		if _, err := tb.Append(t.Context(), []map[string]any{specRow(1, c, time.Now())}, AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tear(t, store, checkpointKey(10))
	fresh, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := fresh.Snapshot(t.Context()); err != nil || s.checkpointVersion != 30 || s.NumFiles() != 30 {
		t.Fatalf("after the checkpoint at 30: %v", err)
	}
}

// A torn or garbage _last_checkpoint is ignored: readers list the log.
// The next checkpoint writes a good one again.
func TestTornLastCheckpointIsIgnored(t *testing.T) {
	_, base := recoverTable(t, 25)
	for name, content := range map[string]string{
		"garbage":      "\xff\x00\x13garbage",
		"torn":         `{"version":2`,
		"empty":        "",
		"negative":     `{"version":-5,"size":3}`,
		"wrong type":   `{"version":"twenty"}`,
		"future":       `{"version":999,"size":3}`,
		"missing file": `{"version":15,"size":3}`,
	} {
		t.Run(name, func(t *testing.T) {
			store := newMemStorage()
			store.objs = maps.Clone(base.objs)
			tb, err := Open(t.Context(), store, WithSyncCheckpoints(), WithCheckpointInterval(10))
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Write(t.Context(), lastCheckpointKey, []byte(content)); err != nil {
				t.Fatal(err)
			}
			checkReads(t, store, 25, 21)
			for c := 26; c <= 30; c++ {
				if _, err := tb.Append(t.Context(), []map[string]any{specRow(1, c, time.Now())}, AppendOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			data, err := store.Read(t.Context(), lastCheckpointKey)
			if err != nil {
				t.Fatal(err)
			}
			var h lastCheckpointHint
			if err := json.Unmarshal(data, &h); err != nil || h.Version != 30 {
				t.Fatalf("_last_checkpoint after the checkpoint at 30: %q, %v", data, err)
			}
			checkReads(t, store, 30, 27)
		})
	}
}

// ckptChildEnv names the table folder of TestCheckpointKillChild, which
// runs only as the child process of TestKill9AtCheckpointVersion.
const ckptChildEnv = "KPIPE_DELTA_CHECKPOINT_CHILD"

// stopBeforeCheckpoint is a storage whose writer says so on stdout and
// then hangs when it is about to write the checkpoint of version v: the
// parent kills it there.
type stopBeforeCheckpoint struct {
	Storage
	v int64
}

func (s stopBeforeCheckpoint) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if key == checkpointKey(s.v) {
		fmt.Printf("ABOUT TO CHECKPOINT %d\n", s.v)
		time.Sleep(time.Hour) // until killed
	}
	return s.Storage.PutIfAbsent(ctx, key, data)
}

func TestCheckpointKillChild(t *testing.T) {
	dir := os.Getenv(ckptChildEnv)
	if dir == "" {
		t.Skip("the child process of TestKill9AtCheckpointVersion")
	}
	local, err := NewLocalStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Open(context.Background(), stopBeforeCheckpoint{local, 10}, WithCheckpointInterval(10))
	if err != nil {
		t.Fatal(err)
	}
	for c := 1; c <= 10; c++ {
		if _, err := tb.Append(context.Background(), []map[string]any{specRow(1, c, time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC))}, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Hour) // the checkpoint of 10 runs in the background, until killed
}

// A writer process killed with SIGKILL right before the checkpoint of
// version 10; a new writer's next commit writes the checkpoint, and the
// table reads right.
func TestKill9AtCheckpointVersion(t *testing.T) {
	dir := t.TempDir()
	store, err := NewLocalStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	_ = createSpecTable(t, store)

	cmd := exec.Command(os.Args[0], "-test.run=^TestCheckpointKillChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), ckptChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	found := false
	for sc.Scan() {
		if sc.Text() == "ABOUT TO CHECKPOINT 10" {
			found = true
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	if !found {
		t.Fatalf("the child ended without reaching the checkpoint: %v\n%s", werr, stderr.String())
	}
	if !exists(t, store, commitKey(10)) || exists(t, store, checkpointKey(10)) {
		t.Fatal("want commit 10 and no checkpoint at 10 after the kill")
	}

	tb, err := Open(t.Context(), store, WithSyncCheckpoints(), WithCheckpointInterval(10))
	if err != nil {
		t.Fatal(err)
	}
	for c := 11; c <= 12; c++ {
		if _, err := tb.Append(t.Context(), []map[string]any{specRow(1, c, time.Now())}, AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if !exists(t, store, checkpointKey(11)) {
		t.Fatal("no checkpoint at 11 after the one at 10 was killed")
	}
	if exists(t, store, checkpointKey(12)) {
		t.Fatal("a checkpoint at 12 too: the next is due at 20")
	}
	fresh, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fresh.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(t.Context(), store, s)
	if err != nil || s.checkpointVersion != 11 || s.Version() != 12 || len(rows) != 12 {
		t.Fatalf("fresh reader: version %d from checkpoint %d, %d rows, %v; want 12 from 11, 12 rows", s.Version(), s.checkpointVersion, len(rows), err)
	}
}
