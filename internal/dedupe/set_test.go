package dedupe

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)

func TestSeenAdd(t *testing.T) {
	s := New(168 * time.Hour)
	if s.Seen("a") || s.Len() != 0 {
		t.Fatal("empty set sees a key")
	}
	s.Add("a", t0)
	s.Add("a", t0)
	s.AddBytes([]byte("b"), t0.Add(time.Hour))
	for _, k := range []string{"a", "b"} {
		if !s.Seen(k) || !s.SeenBytes([]byte(k)) {
			t.Fatalf("%s not seen", k)
		}
	}
	if s.Seen("c") || s.Seen("") {
		t.Fatal("unknown key seen")
	}
	if s.Len() != 2 {
		t.Fatalf("Len %d, want 2", s.Len())
	}
	if s.Window() != 168*time.Hour {
		t.Fatalf("Window %v", s.Window())
	}
}

// TestMany adds enough keys to merge buckets many times, and checks every
// key added is seen and none other is.
func TestMany(t *testing.T) {
	const n = 200_000
	s := New(8 * time.Hour) // 1 h buckets
	for i := range n {
		s.Add(fmt.Sprintf("evt-%08d", i), t0.Add(time.Duration(i)*time.Second/20)) // 10,000 s: 3 buckets
	}
	if s.Len() != n {
		t.Fatalf("Len %d, want %d", s.Len(), n)
	}
	for i := range n {
		if !s.Seen(fmt.Sprintf("evt-%08d", i)) {
			t.Fatalf("key %d not seen", i)
		}
		if s.Seen(fmt.Sprintf("new-%08d", i)) {
			t.Fatalf("new key %d seen", i)
		}
	}
	// Adding them again, at other times too, changes nothing that matters.
	for i := range n {
		s.Add(fmt.Sprintf("evt-%08d", i), t0.Add(time.Duration(i)*time.Second/20))
	}
	if s.Len() != n {
		t.Fatalf("Len after re-adding %d, want %d", s.Len(), n)
	}
	if b := s.Bytes(); b < 16*n || b > 30*n {
		t.Fatalf("Bytes %d for %d keys: want 16–30 a key", b, n)
	}
}

func TestExpire(t *testing.T) {
	w := 8 * time.Hour // buckets of 1 h
	s := New(w)
	for h := range 10 {
		s.Add(fmt.Sprint(h), t0.Add(time.Duration(h)*time.Hour+30*time.Minute))
	}
	// At t0+10h, the cutoff is t0+2h: hours 0 and 1 go, 2 stays.
	if n := s.Expire(t0.Add(10 * time.Hour)); n != 2 {
		t.Fatalf("Expire dropped %d, want 2", n)
	}
	for h := range 10 {
		if got := s.Seen(fmt.Sprint(h)); got != (h >= 2) {
			t.Fatalf("hour %d: seen %v", h, got)
		}
	}
	// The cutoff inside a bucket keeps it: at t0+10h59m hour 2 stays.
	if n := s.Expire(t0.Add(10*time.Hour + 59*time.Minute)); n != 0 {
		t.Fatalf("Expire dropped %d, want 0", n)
	}
	// Keys older than the horizon are not added back.
	s.Add("old", t0)
	if s.Seen("old") {
		t.Fatal("a key older than the expired horizon was added")
	}
	// An earlier now does not bring the horizon back.
	s.Expire(t0)
	s.Add("old", t0)
	if s.Seen("old") {
		t.Fatal("the horizon moved back")
	}
	if n := s.Expire(t0.Add(100 * time.Hour)); n != 8 || s.Len() != 0 {
		t.Fatalf("Expire dropped %d, left %d", n, s.Len())
	}
	// Times before 1970 bucket correctly too.
	s2 := New(w)
	old := time.Date(1969, 12, 31, 23, 30, 0, 0, time.UTC)
	s2.Add("x", old)
	if s2.Expire(old.Add(w)) != 0 || !s2.Seen("x") {
		t.Fatal("pre-1970 key expired early")
	}
	if s2.Expire(old.Add(w+time.Hour)) != 1 {
		t.Fatal("pre-1970 key not expired")
	}
}

func TestConcurrent(t *testing.T) {
	s := New(time.Hour)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					s.Seen("k-1")
					s.Len()
					s.Bytes()
				}
			}
		})
	}
	for i := range 20_000 {
		s.Add(fmt.Sprintf("k-%d", i), t0.Add(time.Duration(i)*time.Millisecond))
		if i%5000 == 0 {
			s.Expire(t0.Add(time.Duration(i) * time.Millisecond))
		}
	}
	close(stop)
	wg.Wait()
	if !s.Seen("k-19999") {
		t.Fatal("last key not seen")
	}
}

// TestFilter checks the Bloom filter holds every key added and passes few
// others, at the load it grows at.
func TestFilter(t *testing.T) {
	s := New(time.Hour)
	f := newFilter(0)
	for i := range f.cap {
		f.add(s.hash(fmt.Sprint("in-", i)))
	}
	for i := range f.cap {
		if !f.has(s.hash(fmt.Sprint("in-", i))) {
			t.Fatalf("key %d added but not in the filter", i)
		}
	}
	fp := 0
	const probes = 100_000
	for i := range probes {
		if f.has(s.hash(fmt.Sprint("out-", i))) {
			fp++
		}
	}
	if rate := float64(fp) / probes; rate > 0.05 {
		t.Fatalf("false positive rate %.3f at capacity, want ≤ 0.05", rate)
	} else {
		t.Logf("false positive rate %.4f at %d bits a key", rate, filterBitsPerKey)
	}
}
