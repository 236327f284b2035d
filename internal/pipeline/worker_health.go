package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"kpipe/internal/metrics"
)

// Defaults of the worker's health checks.
const (
	// DefaultStallTimeout is how long records may wait with nothing made
	// durable before the worker reports itself stalled.
	DefaultStallTimeout = 2 * time.Minute
	// DefaultHealthInterval is how often the worker asks the broker for its
	// partitions' end offsets: the lag gauge and the broker check.
	DefaultHealthInterval = 5 * time.Second
	// degradedWindow is how long after the last failed lookup the worker
	// reports itself degraded.
	degradedWindow = time.Minute
	// lookupLogEvery rate-limits the WARN lines of failing lookups.
	lookupLogEvery = 10 * time.Second
	// brokerRetryEvery bounds how long the broker check waits before asking
	// again while the broker is unreachable, so readiness returns within
	// about a second of the broker coming back, whatever the interval.
	brokerRetryEvery = time.Second
)

// health is what the worker's readiness, lag gauge and degraded state are
// computed from. Its own mutex guards it, so /readyz and the health loop
// never wait for a flush.
type health struct {
	name    string
	log     *slog.Logger
	lag     *prometheus.GaugeVec
	ready   prometheus.Gauge
	degrade *prometheus.GaugeVec
	stall   time.Duration

	mu sync.Mutex
	// joined is set once the group assigned partitions (possibly none).
	joined bool
	// brokerErr is the last failure to reach the broker, nil once it
	// answered again.
	brokerErr error
	// recheck wakes the health loop early: something was made durable
	// while brokerErr was set, so the broker is likely back.
	recheck chan struct{}
	// storageErr is set while table writes are retried.
	storageErr error
	// fatal is the error that stopped the worker.
	fatal error
	// progress is the last time the worker made something durable or had
	// nothing pending.
	progress time.Time
	parts    map[int32]*partHealth
	// stopped are partitions that do not consume, with the reason.
	stopped map[int32]error

	lookupErr     error
	lookupAt      time.Time
	lookupLogged  time.Time
	lookupMissed  int
	lookupSilence int
}

// partHealth is one partition's positions: pos is the offset after the
// last record consumed (transaction markers included), lastData the last
// data record consumed, durable the last offset whose outcome is durable
// (-1: none), end the partition's end offset when last asked.
type partHealth struct {
	pos, lastData, durable, end int64
	known                       bool // end is known
}

func newHealth(name, group, topic string, m *metrics.Metrics, log *slog.Logger, stall time.Duration) *health {
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	return &health{
		name:     name,
		log:      log,
		lag:      m.ConsumerLag.MustCurryWith(prometheus.Labels{"group": group, "topic": topic}),
		ready:    m.Ready.WithLabelValues(name),
		degrade:  m.Degraded.MustCurryWith(prometheus.Labels{"worker": name}),
		stall:    stall,
		parts:    map[int32]*partHealth{},
		stopped:  map[int32]error{},
		progress: time.Now(),
		recheck:  make(chan struct{}, 1),
	}
}

// assigned records that p starts consuming at start.
func (h *health) assigned(p int32, start int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.joined = true
	h.parts[p] = &partHealth{pos: start, lastData: start - 1, durable: start - 1}
	delete(h.stopped, p)
	h.progress = time.Now()
}

// joinedEmpty records an assignment with no partition of the input topic.
func (h *health) joinedEmpty() {
	h.mu.Lock()
	h.joined = true
	h.mu.Unlock()
}

func (h *health) revoked(p int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.parts, p)
	delete(h.stopped, p)
	h.lag.DeleteLabelValues(strconv.Itoa(int(p)))
}

// stop records that p does not consume, and why.
func (h *health) stop(p int32, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.joined = true
	h.stopped[p] = err
}

// consumed records that a poll returned p's records up to last (any kind)
// and lastData (a data record, or -1 when the poll had none).
func (h *health) consumed(p int32, last, lastData, hwm int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ph, ok := h.parts[p]
	if !ok {
		return
	}
	ph.pos = max(ph.pos, last+1)
	if lastData >= 0 {
		ph.lastData = max(ph.lastData, lastData)
	}
	if hwm >= 0 {
		ph.end, ph.known = max(ph.end, hwm), true
	}
	h.setLag(p, ph)
}

// madeDurable records that p's records up to offset have their outcome
// durable (rows committed, error records published, offsets committed).
func (h *health) madeDurable(p int32, offset int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ph, ok := h.parts[p]; ok {
		ph.durable = max(ph.durable, offset)
	}
	h.progress = time.Now()
	if h.brokerErr != nil {
		select {
		case h.recheck <- struct{}{}:
		default:
		}
	}
}

func (h *health) setLag(p int32, ph *partHealth) {
	if ph.known {
		h.lag.WithLabelValues(strconv.Itoa(int(p))).Set(float64(max(ph.end-ph.pos, 0)))
	}
}

func (h *health) setStorage(err error) {
	h.mu.Lock()
	h.storageErr = err
	h.mu.Unlock()
}

func (h *health) setFatal(err error) {
	h.mu.Lock()
	if h.fatal == nil {
		h.fatal = err
	}
	h.mu.Unlock()
}

// lookupFailed records failed lookups of rows that were still written, and
// logs them at most once per lookupLogEvery.
func (h *health) lookupFailed(n int, err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lookupErr, h.lookupAt = err, now
	h.lookupMissed += n
	h.degrade.WithLabelValues("lookup").Set(1)
	if now.Sub(h.lookupLogged) < lookupLogEvery {
		h.lookupSilence += n
		return
	}
	h.log.Warn("lookup_failed", "rows_written_without_lookup", n, "suppressed_since_last_log", h.lookupSilence, "error", err)
	h.lookupLogged, h.lookupSilence = now, 0
}

// pending reports whether some partition has records not yet consumed or
// consumed data not yet durable. Callers hold h.mu.
func (h *health) pendingLocked() (int64, bool) {
	var n int64
	for _, ph := range h.parts {
		if ph.known && ph.end > ph.pos {
			n += ph.end - ph.pos
		}
		if ph.lastData > ph.durable {
			n += ph.lastData - ph.durable
		}
	}
	return n, n > 0
}

// check returns why the worker is not ready, an error wrapping
// metrics.ErrDegraded when it works without a dependency, or nil.
func (h *health) check(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.fatal != nil:
		return fmt.Errorf("%w: %s stopped: %w", ErrNotReady, h.name, h.fatal)
	case h.brokerErr != nil:
		return fmt.Errorf("%w: %s: kafka unreachable: %w", ErrNotReady, h.name, h.brokerErr)
	case !h.joined:
		return fmt.Errorf("%w: %s: waiting to join its consumer group", ErrNotReady, h.name)
	case h.storageErr != nil:
		return fmt.Errorf("%w: %s: table storage unavailable: %w", ErrNotReady, h.name, h.storageErr)
	}
	if len(h.stopped) > 0 {
		ps := make([]int, 0, len(h.stopped))
		for p := range h.stopped {
			ps = append(ps, int(p))
		}
		sort.Ints(ps)
		return fmt.Errorf("%w: %s: partition %d stopped: %w", ErrNotReady, h.name, ps[0], h.stopped[int32(ps[0])])
	}
	n, pending := h.pendingLocked()
	if !pending {
		h.progress = now
	} else if idle := now.Sub(h.progress); idle > h.stall {
		return fmt.Errorf("%w: %s: stalled: %d records pending and nothing made durable for %s (stall timeout %s)", ErrNotReady, h.name, n, idle.Round(time.Second), h.stall)
	}
	if h.lookupErr != nil {
		if now.Sub(h.lookupAt) < degradedWindow {
			return fmt.Errorf("%w: %s: lookups failing, rows written without them (%d in the last minute or more): %w", metrics.ErrDegraded, h.name, h.lookupMissed, h.lookupErr)
		}
		h.lookupErr, h.lookupMissed = nil, 0
		h.degrade.WithLabelValues("lookup").Set(0)
	}
	return nil
}

// refresh asks the broker for the end offsets of the assigned partitions:
// the lag gauge is the end offset less the consumer's position, so a
// drained worker shows 0 whatever transaction markers follow its last
// record; a failure marks the broker unreachable.
func (h *health) refresh(ctx context.Context, adm *kadm.Client, topic string) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		if h.brokerErr == nil && ctx.Err() == nil {
			h.log.Warn("kafka_unreachable", "error", err)
		}
		if ctx.Err() == nil {
			h.brokerErr = err
		}
		return
	}
	if h.brokerErr != nil {
		h.log.Info("kafka_reachable")
	}
	h.brokerErr = nil
	ends.Each(func(o kadm.ListedOffset) {
		if ph, ok := h.parts[o.Partition]; ok && o.Err == nil {
			ph.end, ph.known = o.Offset, true
			h.setLag(o.Partition, ph)
		}
	})
}

// run refreshes every interval until ctx ends, and keeps the ready gauge.
// While the broker is unreachable it asks again every brokerRetryEvery, and
// at once when the worker makes something durable: a check that failed is
// not left to stand for a whole interval after the broker came back.
func (h *health) run(ctx context.Context, adm *kadm.Client, topic string, interval time.Duration) {
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, interval)
		h.refresh(rctx, adm, topic)
		cancel()
		h.gauge()
		wait := interval
		h.mu.Lock()
		if h.brokerErr != nil {
			wait = min(wait, brokerRetryEvery)
		}
		h.mu.Unlock()
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.recheck:
		}
	}
}

func (h *health) gauge() {
	if err := h.check(time.Now()); err != nil && !errors.Is(err, metrics.ErrDegraded) {
		h.ready.Set(0)
	} else {
		h.ready.Set(1)
	}
}
