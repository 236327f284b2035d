package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

// What kpipe up holds stays bounded by these, not by the events it
// generates: the generator waits for the workers (pacer), and the embedded
// broker drops what they are done with (trimmer).

// DefaultMaxLag is Options.MaxLag's default: how many records a worker's
// consumer group may have left of its input topic (end offsets less
// committed ones, summed over the partitions) before the generator waits
// for it. It is well above what a worker takes at once (the enrichment
// worker's transactions of up to 10,000 events, the table writer's flushes
// of up to 10,000 rows), so that it paces the generator without starving
// the workers.
const DefaultMaxLag = 50_000

// lagCheckEvery is how many events the generator publishes between two
// looks at the workers' lag.
const lagCheckEvery = 1000

// lagPoll is how often a waiting generator looks again.
const lagPoll = 50 * time.Millisecond

// DefaultKeepBytes is what the embedded broker of kpipe up keeps of each
// partition of the topics nothing in kpipe up reads (retention.bytes): the
// tracking worker's success topic, about 60,000 of its records of some 70
// bytes. Older records are dropped.
const DefaultKeepBytes = 4 << 20

// embeddedSegmentBytes is the log file size of kpipe up's embedded broker:
// the records it drops free their disk a whole file at a time.
const embeddedSegmentBytes = 8 << 20

// trimEvery is how often kpipe up's embedded broker drops the records its
// workers have committed past.
const trimEvery = time.Second

// pacer holds the generator back while a worker's group has more than max
// records left of its input, so that what Kafka and the workers hold ahead
// of the table stays bounded by max, not by the events generated.
type pacer struct {
	adm     *kadm.Client
	gts     []groupTopic
	max     int64
	publish sim.Sink
	log     *slog.Logger
	// timeout, when > 0, gives up when the lags have not changed for
	// that long while the generator waits.
	timeout time.Duration

	n      int
	paused atomic.Int64 // how many times the generator waited
}

// sink publishes one event, then, every lagCheckEvery events, waits until
// no group has more than max records left.
func (p *pacer) sink(ctx context.Context, key, value []byte) error {
	if err := p.publish(ctx, key, value); err != nil {
		return err
	}
	if p.n++; p.n%lagCheckEvery != 0 {
		return nil
	}
	return p.wait(ctx)
}

// wait returns once every group has at most max records left, ctx's error
// when it ends first, and an error naming what is left when the lags have
// not moved for timeout.
func (p *pacer) wait(ctx context.Context) error {
	var (
		last   []topicLag
		moved  time.Time
		paused bool
	)
	for {
		lags, _, err := offsetLags(ctx, p.adm, p.gts)
		if err != nil {
			return err
		}
		over := slices.ContainsFunc(lags, func(l topicLag) bool { return l.Records > p.max })
		if !over {
			if paused {
				p.log.Debug("generator_resumed", "left", lagText(lags))
			}
			return nil
		}
		if !paused {
			paused = true
			p.paused.Add(1)
			p.log.Debug("generator_waiting", "left", lagText(lags), "max_lag", p.max)
		}
		if !slices.Equal(lags, last) {
			last, moved = lags, time.Now()
		} else if p.timeout > 0 && time.Since(moved) > p.timeout {
			return fmt.Errorf("the workers have not moved for %s while the generator waited for them (left in Kafka: %s; the generator goes on at --max-lag %d)", p.timeout, lagText(lags), p.max)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(lagPoll):
		}
	}
}

// trimmer drops from the embedded broker the records of the workers' input
// topics that every consumer group with offsets there has committed past,
// and enforces the topics' retention (DefaultKeepBytes on those nothing
// reads). A record a group has not committed past is never dropped: the
// workers' exactly-once and the check of --events need them, and so does
// any other consumer group reading the topic (a kpipe worker started
// against the embedded broker).
type trimmer struct {
	adm    *kadm.Client
	broker *kafka.Embedded
	gts    []groupTopic // kpipe up's groups and the topics they read
	log    *slog.Logger
}

// trim drops what the groups have committed past and applies retention. It
// returns the new log start offsets of the partitions it trimmed.
func (t *trimmer) trim(ctx context.Context) (kadm.Offsets, error) {
	listed, err := t.adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the consumer groups: %w", err)
	}
	names := listed.Groups()
	for _, gt := range t.gts {
		if !slices.Contains(names, gt.group) {
			names = append(names, gt.group)
		}
	}
	fetched := t.adm.FetchManyOffsets(ctx, names...)
	// floor[topic][p]: the lowest offset committed there. A partition is
	// trimmed only once kpipe up's own group has committed on it.
	floor := map[string]map[int32]int64{}
	for _, gt := range t.gts {
		r, ok := fetched[gt.group]
		if !ok || r.Err != nil {
			continue // not joined yet: nothing known to be consumed
		}
		for p, o := range r.Fetched[gt.topic] {
			if o.Err == nil && o.At >= 0 {
				if floor[gt.topic] == nil {
					floor[gt.topic] = map[int32]int64{}
				}
				if f, ok := floor[gt.topic][p]; !ok || o.At < f {
					floor[gt.topic][p] = o.At
				}
			}
		}
	}
	for g, r := range fetched {
		if r.Err != nil {
			if errors.Is(r.Err, context.Canceled) || slices.ContainsFunc(t.gts, func(gt groupTopic) bool { return gt.group == g }) {
				continue
			}
			// A group whose offsets are unknown may still need anything.
			return nil, fmt.Errorf("fetching the committed offsets of group %s: %w", g, r.Err)
		}
		r.Fetched.Each(func(o kadm.OffsetResponse) {
			if f, ok := floor[o.Topic][o.Partition]; ok && o.Err == nil && o.At >= 0 && o.At < f {
				floor[o.Topic][o.Partition] = o.At
			}
		})
	}
	del := kadm.Offsets{}
	if len(floor) > 0 {
		starts, err := t.adm.ListStartOffsets(ctx, slices.Sorted(maps.Keys(floor))...)
		if err == nil {
			err = starts.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("listing the start offsets: %w", err)
		}
		starts.Each(func(s kadm.ListedOffset) {
			if f, ok := floor[s.Topic][s.Partition]; ok && f > s.Offset {
				del.AddOffset(s.Topic, s.Partition, f, -1)
			}
		})
	}
	if len(del) > 0 {
		resp, err := t.adm.DeleteRecords(ctx, del)
		if err != nil {
			return nil, fmt.Errorf("deleting consumed records: %w", err)
		}
		for _, r := range resp.Sorted() {
			if r.Err != nil {
				return nil, fmt.Errorf("deleting the consumed records of %s partition %d: %w", r.Topic, r.Partition, r.Err)
			}
		}
	}
	t.broker.ApplyRetention()
	return del, nil
}

// run trims every trimEvery until ctx ends; a failed trim is logged and
// tried again.
func (t *trimmer) run(ctx context.Context) {
	tick := time.NewTicker(trimEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := t.trim(ctx); err != nil && ctx.Err() == nil {
			t.log.Warn("embedded_broker_trim_failed", "err", err)
		}
	}
}

// keepNewest gives the topics of specs named in unread a retention.bytes of
// keep per partition, for the embedded broker: nothing in kpipe up reads
// them.
func keepNewest(specs []kafka.TopicSpec, keep int64, unread ...string) []kafka.TopicSpec {
	out := slices.Clone(specs)
	for i := range out {
		if slices.Contains(unread, out[i].Name) {
			cfgs := maps.Clone(out[i].Configs)
			if cfgs == nil {
				cfgs = map[string]string{}
			}
			cfgs["retention.bytes"] = strconv.FormatInt(keep, 10)
			out[i].Configs = cfgs
		}
	}
	return out
}
