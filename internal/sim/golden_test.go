package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// worldDigest hashes everything a world shows: its events as Events and
// Generate render them, its manifest, TaskEvents, and the API's answers
// for every assignment and project at the world's end.
func worldDigest(t *testing.T, s *Sim) string {
	t.Helper()
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, e := range s.Events() {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Generate(t.Context(), GenerateOptions{DuplicateRate: 0.1, ReorderWindow: 5, Seed: 3}, func(_ context.Context, k, v []byte) error {
		h.Write(k)
		h.Write(v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Manifest()
	for _, id := range m.ids {
		fmt.Fprintln(h, id, m.Templates[id])
		for _, e := range m.Assignments[id] {
			if err := enc.Encode(e); err != nil {
				t.Fatal(err)
			}
		}
		st, ok := s.AssignmentAt(id, s.cur().end.Add(time.Hour))
		fmt.Fprintf(h, "%v %+v\n", ok, st)
	}
	s.TaskEvents(0, func(id string, task int64) { fmt.Fprintln(h, id, task) })
	return hex.EncodeToString(h.Sum(nil))
}

// TestWorldUnchanged pins what seeded worlds render: a change of how the
// world is stored must not change a byte of it. A deliberate change of
// the world's content updates the digests.
func TestWorldUnchanged(t *testing.T) {
	for _, c := range []struct {
		seed     int64
		projects int
		want     string
	}{
		{7, 50, "401ed5221d9f9b668f61b6165787f7494e564dc3e2423ea6fb1062b96912a1c2"},
		{2, 400, "2fdf76220966f4294191a55d933a575e29693c3f51f1bb4f08a09e0e911f87c9"},
	} {
		if got := worldDigest(t, New(Options{Seed: c.seed, Projects: c.projects})); got != c.want {
			t.Errorf("seed %d, %d projects: digest %s, want %s", c.seed, c.projects, got, c.want)
		}
	}
}

// BenchmarkWorldMemory reports the live heap a world holds per event
// (kpipe up's simulator grows by it with --events):
// go test -run '^$' -bench WorldMemory -benchtime 1x ./internal/sim
func BenchmarkWorldMemory(b *testing.B) {
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := New(Options{Seed: 2, Projects: 20000})
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(s.Len()), "B/event")
		b.ReportMetric(float64(s.Len()), "events")
		runtime.KeepAlive(s)
	}
}
