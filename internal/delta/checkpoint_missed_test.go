package delta

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// noCheckpoints is a storage whose checkpoint writes fail, as if the
// writer was killed before them.
type noCheckpoints struct{ Storage }

func (s noCheckpoints) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if strings.HasSuffix(key, ".checkpoint.parquet") {
		return errors.New("killed before the checkpoint")
	}
	return s.Storage.PutIfAbsent(ctx, key, data)
}

// A checkpoint due at version 10 whose writer died before writing it is
// written by the next writer's next commit, not only at 20: readers would
// otherwise replay every JSON commit since the last checkpoint.
func TestMissedCheckpointIsWrittenLater(t *testing.T) {
	store := newMemStorage()
	tb := createSpecTable(t, noCheckpoints{store}, WithSyncCheckpoints(), WithCheckpointInterval(10))
	ts := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	for c := 1; c <= 10; c++ {
		if _, err := tb.Append(t.Context(), []map[string]any{specRow(c, 0, ts)}, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatalf("commit %d: %v", c, err)
		}
	}
	_ = tb.Close(t.Context())
	if _, err := store.Read(t.Context(), checkpointKey(10)); err == nil {
		t.Fatal("the checkpoint at 10 was written: the test shows nothing")
	}

	// A new process: no memory of the failed attempt.
	tb, err := Open(t.Context(), store, WithSyncCheckpoints(), WithCheckpointInterval(10))
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close(t.Context())
	if _, err := tb.Append(t.Context(), []map[string]any{specRow(11, 0, ts)}, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Read(t.Context(), checkpointKey(11)); err != nil {
		t.Fatalf("no checkpoint at 11 after the one due at 10 was missed: %v", err)
	}
	// And then not at every commit: the next is due at 20.
	for c := 12; c <= 19; c++ {
		if _, err := tb.Append(t.Context(), []map[string]any{specRow(c, 0, ts)}, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Read(t.Context(), checkpointKey(int64(c))); err == nil {
			t.Fatalf("a checkpoint at %d, only 10 and 20 are due", c)
		}
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close(t.Context())
	fs, err := fresh.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if fs.CheckpointVersion() != 11 || fs.NumFiles() != snap.NumFiles() {
		t.Fatalf("a fresh reader: checkpoint %d, %d files; want 11, %d", fs.CheckpointVersion(), fs.NumFiles(), snap.NumFiles())
	}
}
