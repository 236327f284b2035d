package delta

import (
	"errors"
	"testing"
	"time"
)

// latestVersion opens the table afresh from store, as another process
// would, and returns its version and the txn version of appID (-1: none).
func latestVersion(t *testing.T, store Storage, appID string) (int64, int64) {
	t.Helper()
	tb, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tv, ok := snap.TxnVersion(appID)
	if !ok {
		tv = -1
	}
	return snap.Version(), tv
}

// BeforeCommit sees the rejected rows while the table is still at the
// version before the Append: records made durable there precede the
// commit that moves the txn past their offsets.
func TestBeforeCommitRunsBeforeTheCommit(t *testing.T) {
	tb, store := newSpecTable(t)
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	rows, bad := rejectBatch(20, ts)
	calls := 0
	var seen []int
	res, err := tb.Append(t.Context(), rows, AppendOptions{
		SchemaEvolution: true, RejectBadRows: true, Txns: []Txn{{AppID: "w-t-0", Version: 19}},
		BeforeCommit: func(rejected []*SchemaError) error {
			calls++
			for _, se := range rejected {
				seen = append(seen, se.Row)
			}
			if v, tv := latestVersion(t, store, "w-t-0"); v != 0 || tv != -1 {
				t.Errorf("in BeforeCommit the table is at version %d with txn %d, want 0 and none", v, tv)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || len(seen) != len(bad) || len(res.Rejected) != len(bad) {
		t.Fatalf("BeforeCommit called %d times with rows %v; result rejected %d; want once with the %d bad rows", calls, seen, len(res.Rejected), len(bad))
	}
	for _, r := range seen {
		if !bad[r] {
			t.Fatalf("row %d is not bad", r)
		}
	}
	if v, tv := latestVersion(t, store, "w-t-0"); v != 1 || tv != 19 {
		t.Fatalf("after Append: version %d txn %d, want 1 and 19", v, tv)
	}

	// No rejection: called once with none.
	calls = 0
	good := []map[string]any{answersRow(100, ts, 1.5)}
	if _, err := tb.Append(t.Context(), good, AppendOptions{RejectBadRows: true, BeforeCommit: func(rejected []*SchemaError) error {
		calls++
		if len(rejected) != 0 {
			t.Errorf("rejected %v, want none", rejected)
		}
		return nil
	}}); err != nil || calls != 1 {
		t.Fatalf("calls %d, err %v", calls, err)
	}
}

// An error from BeforeCommit fails the Append and commits nothing: not
// the rows, not the txn. The next Append commits normally.
func TestBeforeCommitErrorCommitsNothing(t *testing.T) {
	tb, store := newSpecTable(t)
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	rows, bad := rejectBatch(20, ts)
	errPublish := errors.New("publishing error records: broker down")
	opts := AppendOptions{
		SchemaEvolution: true, RejectBadRows: true, Txns: []Txn{{AppID: "w-t-0", Version: 19}},
		BeforeCommit: func([]*SchemaError) error { return errPublish },
	}
	if _, err := tb.Append(t.Context(), rows, opts); !errors.Is(err, errPublish) {
		t.Fatalf("got %v, want %v", err, errPublish)
	}
	if v, tv := latestVersion(t, store, "w-t-0"); v != 0 || tv != -1 {
		t.Fatalf("after the failed Append: version %d txn %d, want 0 and none", v, tv)
	}
	// Every row rejected: the callback still runs first, and its error is
	// the Append's.
	all := []map[string]any{rows[9], rows[19]}
	if !bad[9] || !bad[19] {
		t.Fatal("rows 9 and 19 should be bad")
	}
	var got []*SchemaError
	opts.BeforeCommit = func(rejected []*SchemaError) error { got = rejected; return errPublish }
	if _, err := tb.Append(t.Context(), all, opts); !errors.Is(err, errPublish) || len(got) != 2 {
		t.Fatalf("all rejected: got %v with %d rejected, want %v with 2", err, len(got), errPublish)
	}
	// Retried with a callback that succeeds: the same rows commit.
	opts.BeforeCommit = func([]*SchemaError) error { return nil }
	res, err := tb.Append(t.Context(), rows, opts)
	if err != nil || res.Version != 1 || len(res.Rejected) != len(bad) {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	snap, _ := tb.Snapshot(t.Context())
	got2, err := ReadRows(t.Context(), store, snap)
	if err != nil || len(got2) != len(rows)-len(bad) {
		t.Fatalf("table holds %d rows (%v), want %d", len(got2), err, len(rows)-len(bad))
	}
}

// A commit that loses the race against a concurrent blind append is
// retried at the next version without calling BeforeCommit again: the
// retry commits the same files and rejections.
func TestBeforeCommitOnceAcrossCommitRetries(t *testing.T) {
	tb, store := newSpecTable(t)
	other, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	rows, bad := rejectBatch(20, ts)
	calls := 0
	res, err := tb.Append(t.Context(), rows, AppendOptions{
		SchemaEvolution: true, RejectBadRows: true, Txns: []Txn{{AppID: "w-t-0", Version: 19}},
		BeforeCommit: func(rejected []*SchemaError) error {
			calls++
			// Another writer commits version 1 first, so this Append's
			// first attempt finds version 1 taken.
			_, err := other.Append(t.Context(), []map[string]any{answersRow(500, ts, 1.5)}, AppendOptions{SchemaEvolution: true, Txns: []Txn{{AppID: "w-t-1", Version: 7}}})
			return err
		},
	})
	// The winner changed the schema: this Append cannot be reordered
	// after it and fails, having published its records once.
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("got %+v, %v; want a *ConflictError (the winner changed the schema)", res, err)
	}
	if calls != 1 {
		t.Fatalf("BeforeCommit called %d times, want 1", calls)
	}

	// Without a schema change the losing attempt is retried at version 3.
	calls = 0
	if _, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true, RejectBadRows: true}); err != nil {
		t.Fatal(err)
	}
	before, _ := tb.Snapshot(t.Context())
	res, err = tb.Append(t.Context(), rows, AppendOptions{
		RejectBadRows: true, Txns: []Txn{{AppID: "w-t-0", Version: 19}},
		BeforeCommit: func(rejected []*SchemaError) error {
			calls++
			if len(rejected) != len(bad) {
				t.Errorf("rejected %d, want %d", len(rejected), len(bad))
			}
			_, err := other.Append(t.Context(), []map[string]any{answersRow(501, ts, 1.5)}, AppendOptions{Txns: []Txn{{AppID: "w-t-1", Version: 8}}})
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || res.Version != before.Version()+2 || len(res.Rejected) != len(bad) {
		t.Fatalf("calls %d version %d rejected %d; want 1, %d, %d", calls, res.Version, len(res.Rejected), before.Version()+2, len(bad))
	}
	if v, tv := latestVersion(t, store, "w-t-0"); v != res.Version || tv != 19 {
		t.Fatalf("version %d txn %d, want %d and 19", v, tv, res.Version)
	}
	if _, tv := latestVersion(t, store, "w-t-1"); tv != 8 {
		t.Fatalf("other writer's txn %d, want 8", tv)
	}
}
