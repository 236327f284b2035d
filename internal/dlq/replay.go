package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// drainWait is how long a poll waits for more records before the error
// topic counts as drained.
const drainWait = 3 * time.Second

// ReplayOptions say which dead-letter records to replay and where.
type ReplayOptions struct {
	// ErrorTopic is read. Required.
	ErrorTopic string
	// Group remembers how far replays have got, so that a second replay
	// does not re-inject the same records. Default "kpipe-dlq-replay".
	Group string
	// Classes, when set, replays only records of these error classes; the
	// records of other classes stay for a later replay. How far each class
	// has been replayed is kept by the group Group + "." + class (see
	// ClassGroup); a replay of every class skips what those have done and
	// commits Group.
	Classes []string
	// Since, when set, replays only records that failed at or after it.
	Since time.Time
	// To, when set, replays into this topic instead of each record's own.
	To string
	// IncludeWritten replays records whose row was written too; they are
	// skipped by default, since replaying them writes their row again
	// into a table whose writer does not deduplicate (a delta_writer
	// with dedupe drops them).
	IncludeWritten bool
	// Limit stops after this many replayed records (0: no limit).
	Limit int
	// DryRun reads and counts but produces nothing and commits nothing.
	DryRun bool
}

// Stats is what a replay did.
type Stats struct {
	// Read is the number of error records read.
	Read int
	// Replayed counts the records re-injected (or, in a dry run, that
	// would be), by error class.
	Replayed map[string]int
	// Skipped counts records left alone, by reason: "row_written",
	// "class", "since", "undecodable", "truncated".
	Skipped map[string]int
	// Truncated lists the records skipped because they keep only a prefix
	// of their original (it exceeded the error topic's size limit): the
	// message is gone from the error topic, and its length and SHA-256
	// identify it in the source topic, if that still holds it.
	Truncated []TruncatedOriginal
}

// TruncatedOriginal names a record Replay refused because its original was
// cut.
type TruncatedOriginal struct {
	// ErrorPartition and ErrorOffset locate the error record.
	ErrorPartition int32
	ErrorOffset    int64
	// Topic, Partition and Offset locate the original message.
	Topic     string
	Partition int32
	Offset    int64
	// Length and SHA256 (hex) describe the whole original.
	Length int
	SHA256 string
	Class  string
}

// String says what was refused and why, for an operator.
func (t TruncatedOriginal) String() string {
	return fmt.Sprintf("error record %d/%d: the original of %s/%d/%d (%d bytes, sha256 %s) exceeded the error topic's size limit and was cut; it cannot be replayed from here",
		t.ErrorPartition, t.ErrorOffset, t.Topic, t.Partition, t.Offset, t.Length, t.SHA256)
}

// Total is the number of records replayed.
func (s Stats) Total() int {
	n := 0
	for _, c := range s.Replayed {
		n += c
	}
	return n
}

// Replay re-injects the error records of o.ErrorTopic that pass its
// filters: each record's original bytes and key go back to the topic it was
// consumed from, with AttemptHeader set. A record whose original was cut
// (original_truncated) is never re-injected: it is counted under Skipped
// "truncated" and listed in Stats.Truncated. It reads up to the end of the topic
// as it is when Replay starts, then commits the group's offsets (unless a
// dry run) once every replayed record is acknowledged. cl must not be a
// consumer already; Replay builds its own consumer from seeds.
func Replay(ctx context.Context, cl *kgo.Client, seeds []kgo.Opt, o ReplayOptions) (Stats, error) {
	st := Stats{Replayed: map[string]int{}, Skipped: map[string]int{}}
	if o.ErrorTopic == "" {
		return st, errors.New("dlq replay: the error topic is required")
	}
	if o.Group == "" {
		o.Group = "kpipe-dlq-replay"
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, o.ErrorTopic)
	if err != nil {
		return st, fmt.Errorf("dlq replay: reading the end of %s: %w", o.ErrorTopic, err)
	}
	if err := ends.Error(); err != nil {
		return st, fmt.Errorf("dlq replay: %s: %w", o.ErrorTopic, err)
	}
	cur, err := readCursors(ctx, adm, o)
	if err != nil {
		return st, err
	}
	// Where to start in each partition (the lowest cursor of the classes
	// replayed), and where to stop.
	start := map[int32]kgo.Offset{}
	end := map[int32]int64{}
	ends.Each(func(e kadm.ListedOffset) {
		from := cur.start(e.Partition)
		if from < e.Offset {
			start[e.Partition] = kgo.NewOffset().At(from)
			end[e.Partition] = e.Offset
		}
	})
	if len(start) == 0 {
		return st, nil
	}
	consumer, err := kgo.NewClient(append(slices.Clone(seeds),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.ErrorTopic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return st, err
	}
	defer consumer.Close()

	var (
		produced  []*kgo.Record
		reached   = map[int32]int64{} // next offset to commit, per partition
		remaining = len(end)
	)
	for remaining > 0 && (o.Limit == 0 || st.Total() < o.Limit) {
		// Transaction markers take offsets no consumer sees, so the end may
		// never be reached by a record: a poll that finds nothing more
		// means the topic is drained.
		pollCtx, cancel := context.WithTimeout(ctx, drainWait)
		fs := consumer.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if fs.NumRecords() == 0 {
			// Commit only what was seen: a slow fetch must not skip records.
			break
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return st, fmt.Errorf("dlq replay: reading %s: %w", o.ErrorTopic, err)
		}
		stop := false
		fs.EachRecord(func(r *kgo.Record) {
			if stop || r.Offset >= end[r.Partition] {
				return
			}
			if o.Limit > 0 && st.Total() >= o.Limit {
				stop = true
				return
			}
			var rec Record
			out, reason := replayable(r, &rec, o)
			if reason != "class" && r.Offset < cur.at(r.Partition, rec.Class) {
				// Replayed already, by a replay of its class alone.
				reached[r.Partition] = r.Offset + 1
				if r.Offset+1 == end[r.Partition] {
					remaining--
				}
				return
			}
			st.Read++
			if reason != "" {
				st.Skipped[reason]++
				if reason == "truncated" {
					st.Truncated = append(st.Truncated, TruncatedOriginal{ErrorPartition: r.Partition, ErrorOffset: r.Offset,
						Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Length: rec.OriginalLength, SHA256: rec.OriginalSHA256, Class: rec.Class})
				}
			} else {
				produced = append(produced, out)
				st.Replayed[rec.Class]++
			}
			reached[r.Partition] = r.Offset + 1
			if r.Offset+1 == end[r.Partition] {
				remaining--
			}
		})
	}
	if o.DryRun {
		return st, nil
	}
	if err := cl.ProduceSync(ctx, produced...).FirstErr(); err != nil {
		return st, fmt.Errorf("dlq replay: producing: %w", err)
	}
	offsets := kadm.Offsets{}
	for p, at := range reached {
		offsets.AddOffset(o.ErrorTopic, p, at, -1)
	}
	// A replay of some classes moves only their cursors: the other
	// classes' records stay for a later replay.
	groups := []string{o.Group}
	if len(o.Classes) > 0 {
		groups = groups[:0]
		for _, c := range o.Classes {
			groups = append(groups, ClassGroup(o.Group, c))
		}
	}
	for _, g := range groups {
		resp, err := adm.CommitOffsets(ctx, g, offsets)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return st, fmt.Errorf("dlq replay: the records were replayed but the group %s could not record it: %w", g, err)
		}
	}
	return st, nil
}

// ClassGroup is the consumer group that keeps how far the records of one
// error class have been replayed by replays of chosen classes (--class).
func ClassGroup(group, class string) string { return group + "." + class }

// cursors are where replays have got in each partition: the group's
// offset for every class, and each class group's.
type cursors struct {
	o       ReplayOptions
	base    map[int32]int64
	byClass map[string]map[int32]int64
}

// readCursors reads the offsets of o.Group and of the class groups.
func readCursors(ctx context.Context, adm *kadm.Client, o ReplayOptions) (*cursors, error) {
	c := &cursors{o: o, base: map[int32]int64{}, byClass: map[string]map[int32]int64{}}
	classes := o.Classes
	if len(classes) == 0 {
		classes = Classes()
	}
	groups := []string{o.Group}
	for _, cl := range classes {
		groups = append(groups, ClassGroup(o.Group, cl))
	}
	fetched := adm.FetchManyOffsets(ctx, groups...)
	for i, g := range groups {
		r, ok := fetched[g]
		if ok && r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
			return nil, fmt.Errorf("dlq replay: reading group %s: %w", g, r.Err)
		}
		// A group that never replayed anything starts at the beginning.
		m := c.base
		if i > 0 {
			m = map[int32]int64{}
			c.byClass[classes[i-1]] = m
		}
		r.Fetched.Each(func(or kadm.OffsetResponse) {
			if or.Topic == o.ErrorTopic && or.Err == nil && or.At >= 0 {
				m[or.Partition] = or.At
			}
		})
	}
	return c, nil
}

// at is where the records of class have been replayed to in partition p.
func (c *cursors) at(p int32, class string) int64 {
	return max(c.base[p], c.byClass[class][p])
}

// start is where a replay starts reading partition p: the lowest cursor
// of the classes it replays.
func (c *cursors) start(p int32) int64 {
	if len(c.o.Classes) == 0 {
		return c.base[p]
	}
	from := int64(-1)
	for _, cl := range c.o.Classes {
		if a := c.at(p, cl); from < 0 || a < from {
			from = a
		}
	}
	return max(from, 0)
}

// replayable decodes the error record r into rec and returns the record to
// produce for it, or why it is skipped.
func replayable(r *kgo.Record, rec *Record, o ReplayOptions) (*kgo.Record, string) {
	if err := json.Unmarshal(r.Value, rec); err != nil || rec.Topic == "" {
		return nil, "undecodable"
	}
	original, whole := rec.OriginalBytes()
	switch {
	case rec.RowWritten && !o.IncludeWritten:
		return nil, "row_written"
	case len(o.Classes) > 0 && !slices.Contains(o.Classes, rec.Class):
		return nil, "class"
	case !o.Since.IsZero() && rec.FailedAt.Before(o.Since):
		return nil, "since"
	case !whole:
		// Re-injecting a prefix would make a new, broken message.
		return nil, "truncated"
	}
	topic := rec.Topic
	if o.To != "" {
		topic = o.To
	}
	out := &kgo.Record{Topic: topic, Value: original,
		Headers: []kgo.RecordHeader{{Key: AttemptHeader, Value: []byte(strconv.Itoa(max(rec.Attempt, 1) + 1))}}}
	if rec.Key != "" {
		out.Key = []byte(rec.Key)
	}
	return out, ""
}
