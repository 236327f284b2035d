package delta

import (
	"errors"
	"testing"
	"time"
)

// An operator's offset reset rewinds a txn version in a commit that says
// so; without RewindTxns a version not above the stored one is a conflict,
// and a rewind that expects another stored version (a concurrent writer
// moved it) is refused.
func TestAppendRewindTxns(t *testing.T) {
	ctx := t.Context()
	tbl, _ := newSpecTable(t)
	ts := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	row := func(i int) []map[string]any { return []map[string]any{specRow(0, i, ts)} }
	if _, err := tbl.Append(ctx, row(1), AppendOptions{SchemaEvolution: true, Txns: []Txn{{AppID: "w-t-0", Version: 500}}}); err != nil {
		t.Fatal(err)
	}
	var ce *ConflictError
	if _, err := tbl.Append(ctx, row(2), AppendOptions{SchemaEvolution: true, Txns: []Txn{{AppID: "w-t-0", Version: 3}}}); !errors.As(err, &ce) {
		t.Fatalf("rewind without RewindTxns: %v, want a ConflictError", err)
	}
	if _, err := tbl.Append(ctx, row(2), AppendOptions{SchemaEvolution: true, Txns: []Txn{{AppID: "w-t-0", Version: 3}}, RewindTxns: map[string]int64{"w-t-0": 499}}); !errors.As(err, &ce) {
		t.Fatalf("rewind expecting another stored version: %v, want a ConflictError", err)
	}
	res, err := tbl.Append(ctx, row(2), AppendOptions{
		SchemaEvolution: true,
		Txns:            []Txn{{AppID: "w-t-0", Version: 3}},
		RewindTxns:      map[string]int64{"w-t-0": 500},
		CommitInfo:      map[string]any{"kpipe.offsetReset": "earliest", "operation": "not this"},
	})
	if err != nil {
		t.Fatalf("rewind: %v", err)
	}
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := snap.TxnVersion("w-t-0"); v != 3 {
		t.Fatalf("txn version %d after the rewind, want 3", v)
	}
	hist := snap.History()
	last := hist[len(hist)-1]
	if last.Version != res.Version || last.Operation != "WRITE" || last.Info["kpipe.offsetReset"] != "earliest" {
		t.Fatalf("commitInfo %+v, want WRITE with kpipe.offsetReset", last)
	}
}
