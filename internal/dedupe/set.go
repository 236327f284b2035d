// Package dedupe holds the keys seen over a sliding window of event time, in
// little memory, so a writer can drop an event it already wrote. It knows
// nothing of where keys come from: a caller rebuilds a Set from its own
// store (the delta_writer reads the table's key and time columns with
// delta.ReadColumns; Example_rebuild shows it) and keeps it current with
// Add.
//
//	s := dedupe.New(168 * time.Hour)
//	for _, ev := range batch {
//		if s.Seen(ev.ID) {
//			continue // written before: drop
//		}
//		s.Add(ev.ID, ev.Time)
//		out = append(out, ev)
//	}
//	s.Expire(time.Now())
//
// # Keys
//
// A key is kept as a 128-bit hash: two independently seeded 64-bit
// hash/maphash values (seeds random per Set, so no input is crafted to
// collide). A collision makes Seen report a key that was never added, which
// would silently drop a real event; with n keys held its probability is
// about n²/2¹²⁹: 1.5·10⁻²⁵ for 10 million keys, and a lookup of a new key
// meets a false positive with probability n/2¹²⁸ (3·10⁻³² at 10 million).
// A 64-bit hash alone would collide with probability 2.7·10⁻⁶ at 10 million
// keys, too close to "will happen" over years of restarts.
//
// # Memory and expiry
//
// Keys go into buckets by event time, each Window/8 wide. A bucket is a
// sorted array of 16-byte hashes with a directory of their top bits (about
// 16.3 bytes a key) plus a small map of recent additions, merged into the
// array when it passes an eighth of its size or a later bucket starts. A
// Bloom filter over all buckets (about 1.3 bytes a key) answers most
// lookups of new keys in one cache line; the others, and keys held, are
// looked up in each bucket. Bytes estimates the total; BenchmarkMemory
// measures it. Expire drops whole buckets: a key is kept at least Window
// after its event time and at most Window plus one bucket width.
//
// # Performance
//
// Measured on 2 cores, 24 GiB with
// `KPIPE_DEDUPE_BENCH_10M=1 go test -run - -bench 'Memory|Seen|Rebuild' -timeout 60m ./internal/dedupe/`:
//
//   - memory: 17.7–18.0 bytes a key of RSS at 1M keys, 17.6 at 10M
//     (176 MB); Bytes estimates 17.5;
//   - Seen, 1M keys over 168 h: 120–130 ns for a new key, 520–540 ns for
//     a key held (searched bucket by bucket, newest first);
//   - rebuilding from a table of SPEC-like rows (BenchmarkRebuild): 1M
//     rows in 0.63–0.81 s (1.2–1.6M rows/s over runs), 10M rows in
//     10.9–11.4 s (0.88–0.92M rows/s), most of it adding keys, not
//     reading; the files of the day outside the window are pruned. RSS
//     grows by at most 326 MB during the 10M rebuild, for a Set of 154 MB:
//     the rest is merged-away arrays the GC has not returned yet
//     (GOMEMLIMIT bounds it).
package dedupe

import (
	"cmp"
	"hash/maphash"
	"maps"
	"math/bits"
	"slices"
	"sync"
	"time"
)

// buckets is how many buckets a window spans.
const buckets = 8

// key is a key's 128-bit hash.
type key [2]uint64

func compareKeys(a, b key) int {
	if c := cmp.Compare(a[0], b[0]); c != 0 {
		return c
	}
	return cmp.Compare(a[1], b[1])
}

// Set is a set of keys with event times, bounded to a window of event
// time. It is safe for concurrent use: Seen takes a read lock, Add and
// Expire a write lock. Seen followed by Add is not atomic; a writer that
// checks then adds from several goroutines must serialize them itself.
type Set struct {
	window time.Duration
	width  time.Duration
	seeds  [2]maphash.Seed

	mu      sync.RWMutex
	buckets map[int64]*bucket // by floor(event time / width)
	order   []*bucket         // buckets, newest first: redeliveries are recent
	horizon int64             // buckets below this index were expired
	newest  int64             // the highest bucket index made
	filter  filter            // every bucket's keys
}

// bucket holds the keys of one width of event time.
type bucket struct {
	sorted []key // sorted, no duplicates
	// dir[i] is the index in sorted of the first key whose top dirBits
	// bits are ≥ i; dir has 2^dirBits+1 entries.
	dir     []uint32
	dirBits uint
	recent  map[key]struct{}
}

// New returns an empty Set that keeps keys for window of event time
// (window must be positive; at least one second is used).
func New(window time.Duration) *Set {
	window = max(window, time.Second)
	return &Set{
		window:  window,
		width:   max(window/buckets, time.Nanosecond),
		seeds:   [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		buckets: map[int64]*bucket{},
		horizon: minIndex,
		newest:  minIndex,
		filter:  newFilter(0),
	}
}

const minIndex = -1 << 63

// Window returns the window the Set was made with.
func (s *Set) Window() time.Duration { return s.window }

func (s *Set) hash(k string) key {
	return key{maphash.String(s.seeds[0], k), maphash.String(s.seeds[1], k)}
}

func (s *Set) hashBytes(k []byte) key {
	return key{maphash.Bytes(s.seeds[0], k), maphash.Bytes(s.seeds[1], k)}
}

// index returns the bucket of event time at; times more than 292 years
// from 1970 share the first or last (time.Sub saturates).
func (s *Set) index(at time.Time) int64 {
	d := at.Sub(unixEpoch)
	i := int64(d / s.width)
	if d%s.width < 0 {
		i--
	}
	return i
}

var unixEpoch = time.Unix(0, 0)

// Seen reports whether key was added and not expired yet.
func (s *Set) Seen(key string) bool { return s.seen(s.hash(key)) }

// SeenBytes is Seen of a key given as bytes (no copy is made).
func (s *Set) SeenBytes(key []byte) bool { return s.seen(s.hashBytes(key)) }

func (s *Set) seen(h key) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.filter.has(h) {
		return false
	}
	for _, b := range s.order {
		if b.has(h) {
			return true
		}
	}
	return false
}

// sortBuckets lays out order after buckets changed.
func (s *Set) sortBuckets() {
	idx := slices.Sorted(maps.Keys(s.buckets))
	s.order = s.order[:0]
	for _, i := range slices.Backward(idx) {
		s.order = append(s.order, s.buckets[i])
	}
}

// Add records key with its event time. Adding a key again is harmless: at
// the same time it changes nothing, at another it may hold the key a while
// longer (each bucket it went into keeps it). A key older than what Expire
// already dropped is not added.
func (s *Set) Add(key string, at time.Time) { s.add(s.hash(key), at) }

// AddBytes is Add of a key given as bytes (no copy is kept).
func (s *Set) AddBytes(key []byte, at time.Time) { s.add(s.hashBytes(key), at) }

func (s *Set) add(h key, at time.Time) {
	i := s.index(at)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < s.horizon {
		return
	}
	b := s.buckets[i]
	if b == nil {
		if i > s.newest {
			// Time moved on: older buckets will get few more keys, so
			// their recent keys go into their arrays, where a lookup
			// costs less memory traffic and a key 16 bytes.
			for _, o := range s.buckets {
				if len(o.recent) > 0 {
					o.merge()
				}
			}
			s.newest = i
		}
		b = &bucket{recent: map[key]struct{}{}}
		s.buckets[i] = b
		s.sortBuckets()
	}
	if !b.add(h) {
		return
	}
	if s.filter.n >= s.filter.cap {
		s.rebuildFilter()
	}
	s.filter.add(h)
}

// rebuildFilter sizes the filter anew for the keys held and adds them.
func (s *Set) rebuildFilter() {
	n := 0
	for _, b := range s.buckets {
		n += b.len()
	}
	s.filter = newFilter(n)
	for _, b := range s.buckets {
		for _, h := range b.sorted {
			s.filter.add(h)
		}
		for h := range b.recent {
			s.filter.add(h)
		}
	}
}

// Expire drops the keys whose event time is more than Window before now,
// whole buckets at a time, and returns how many it dropped; later Adds of
// keys that old are ignored.
func (s *Set) Expire(now time.Time) int {
	// A bucket goes when its end is at or before now - window.
	h := s.index(now.Add(-s.window)) // the bucket holding the cutoff stays
	s.mu.Lock()
	defer s.mu.Unlock()
	s.horizon = max(s.horizon, h)
	n, dropped := 0, false
	for i, b := range s.buckets {
		if i < s.horizon {
			n += b.len()
			delete(s.buckets, i)
			dropped = true
		}
	}
	if dropped {
		s.sortBuckets()
		s.rebuildFilter()
	}
	return n
}

// Len returns the number of keys held (a key added to several buckets, at
// event times far apart, counts once in each).
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, b := range s.buckets {
		n += b.len()
	}
	return n
}

// mapEntryBytes estimates a Go map entry of a 16-byte key and no value:
// a 16-byte slot and a control byte, at the swiss table's usual load.
const mapEntryBytes = 24

// Bytes estimates the memory the Set holds, in bytes: key arrays (by
// capacity), directories and maps. It leaves out garbage not yet collected
// and, while a bucket merges, the array being replaced.
func (s *Set) Bytes() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 64 + s.filter.bytes()
	for _, b := range s.buckets {
		n += 128 + int64(cap(b.sorted))*16 + int64(cap(b.dir))*4 + int64(len(b.recent))*mapEntryBytes
	}
	return n
}

func (b *bucket) len() int { return len(b.sorted) + len(b.recent) }

func (b *bucket) has(h key) bool {
	if len(b.recent) > 0 {
		if _, ok := b.recent[h]; ok {
			return true
		}
	}
	if len(b.sorted) == 0 {
		return false
	}
	j := h[0] >> (64 - b.dirBits) // 0 when dirBits is 0
	ks := b.sorted[b.dir[j]:b.dir[j+1]]
	// 8 to 16 keys, in two or three cache lines: a linear scan.
	for i := range ks {
		if ks[i][0] < h[0] {
			continue
		}
		for ; i < len(ks) && ks[i][0] == h[0]; i++ {
			if ks[i][1] == h[1] {
				return true
			}
		}
		return false
	}
	return false
}

// mergeMin is the fewest recent keys worth a merge.
const mergeMin = 4096

// add adds h and reports whether it was new to the bucket.
func (b *bucket) add(h key) bool {
	if b.has(h) {
		return false
	}
	b.recent[h] = struct{}{}
	if len(b.recent) >= max(mergeMin, len(b.sorted)/8) {
		b.merge()
	}
	return true
}

// merge moves the recent keys into the sorted array and rebuilds the
// directory.
func (b *bucket) merge() {
	add := make([]key, 0, len(b.recent))
	for k := range b.recent {
		add = append(add, k)
	}
	slices.SortFunc(add, compareKeys)
	out := make([]key, 0, len(b.sorted)+len(add))
	i, j := 0, 0
	for i < len(b.sorted) && j < len(add) {
		switch c := compareKeys(b.sorted[i], add[j]); {
		case c < 0:
			out = append(out, b.sorted[i])
			i++
		case c > 0:
			out = append(out, add[j])
			j++
		default:
			out = append(out, add[j])
			i++
			j++
		}
	}
	out = append(out, b.sorted[i:]...)
	out = append(out, add[j:]...)
	b.sorted = out
	b.recent = map[key]struct{}{}
	b.buildDir()
}

// buildDir indexes the sorted keys by their top bits, 8 to 16 keys a
// directory slot, so a lookup reads the directory and two or three cache
// lines of keys.
func (b *bucket) buildDir() {
	n := len(b.sorted)
	b.dirBits = 0
	if n >= 16 {
		b.dirBits = uint(bits.Len(uint(n/8))) - 1
	}
	slots := 1 << b.dirBits
	if cap(b.dir) >= slots+1 {
		b.dir = b.dir[:slots+1]
	} else {
		b.dir = make([]uint32, slots+1)
	}
	p := 0
	for j := range slots {
		for p < n && b.sorted[p][0]>>(64-b.dirBits) < uint64(j) {
			p++
		}
		b.dir[j] = uint32(p)
	}
	b.dir[slots] = uint32(n)
}
