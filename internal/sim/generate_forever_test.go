package sim

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"kpipe/internal/claimx"
)

// TestGenerateForever: with Forever the events do not run out: the world
// grows past its first timeline, ids stay unique, time keeps moving
// forward, and the API answers for the assignments of the grown part.
func TestGenerateForever(t *testing.T) {
	s := New(Options{Seed: 3, Projects: 20})
	srv := httptest.NewServer(s)
	defer srv.Close()
	first := s.Len()
	want := 3*first + 7
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	seen := map[string]bool{}
	var last time.Time
	var lastAssign int64
	errStop := errors.New("enough")
	err := s.Generate(ctx, GenerateOptions{Forever: true}, func(_ context.Context, _, v []byte) error {
		e, err := claimx.ParseEvent(v)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[e.EventID] {
			t.Errorf("event id %s delivered twice", e.EventID)
		}
		seen[e.EventID] = true
		if e.IngestedAt.Before(last) {
			t.Errorf("event %s at %s before the previous one at %s", e.EventID, e.IngestedAt, last)
		}
		last = e.IngestedAt
		if e.TaskAssignmentID.Valid {
			lastAssign = e.TaskAssignmentID.Value
		}
		if len(seen) == want {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Generate Forever stopped by itself after %d events (first timeline %d): %v", len(seen), first, err)
	}
	if s.Len() < want {
		t.Fatalf("world has %d events, want at least %d delivered", s.Len(), want)
	}
	if lastAssign == 0 {
		t.Fatal("no task event delivered")
	}
	code, body := get(t, srv, "/customTasks/assignment/"+strconv.FormatInt(lastAssign, 10)+"?full=true", DefaultToken)
	if code != http.StatusOK {
		t.Fatalf("assignment %d of the grown world: %d %s", lastAssign, code, body)
	}
	// Limit still stops a Forever generation, across a growth.
	got := 0
	if err := s.Generate(t.Context(), GenerateOptions{Forever: true, Limit: s.Len() + 5}, func(context.Context, []byte, []byte) error { got++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got < want+5 {
		t.Fatalf("Limit %d across a growth delivered %d", want+5, got)
	}
}
