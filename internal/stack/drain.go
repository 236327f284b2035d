package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/dlq"
	"kpipe/internal/kafka"
)

// probeTimeout bounds one look past a group's committed offset: a
// partition whose records there did not arrive in time (an open
// transaction holds them back) counts as not drained.
const probeTimeout = 2 * time.Second

// probeFetchBytes caps what one look past a group's committed offset
// fetches: it needs the first data record only, and a group far behind
// must not make every look read megabytes.
const probeFetchBytes = 64 << 10

// groupTopic is a consumer group and the topic it consumes.
type groupTopic struct{ group, topic string }

// topicLag is what a group has left of its topic: Records is the end
// offsets less the committed ones, summed over the partitions that still
// hold data records past their committed offset (a partition whose only
// records there are transaction markers, or records of aborted
// transactions, is drained and counts 0).
type topicLag struct {
	Group, Topic string
	Records      int64
	// End is the sum of the partitions' end offsets: it moves when
	// anything is produced.
	End int64
}

// drained reports whether every group has nothing left.
func drained(lags []topicLag) bool {
	for _, l := range lags {
		if l.Records > 0 {
			return false
		}
	}
	return true
}

// groupLags asks the cluster how much each group has left of its topic:
// committed offsets against end offsets. A transactional producer ends
// each transaction with a marker that consumers never commit past, so
// where a group's committed offset is short of the end, the records in
// between are read (read_committed, markers kept): only data records count.
func groupLags(ctx context.Context, cl *kgo.Client, seeds []kgo.Opt, gts []groupTopic) ([]topicLag, error) {
	out, gaps, err := offsetLags(ctx, kadm.NewClient(cl), gts)
	if err != nil {
		return nil, err
	}
	for i := range out {
		l := &out[i]
		if len(gaps[i]) == 0 {
			continue
		}
		data, err := dataPast(ctx, seeds, l.Topic, gaps[i])
		if err != nil {
			return nil, err
		}
		l.Records = 0
		for p, g := range gaps[i] {
			if data[p] {
				l.Records += g[1] - g[0]
			}
		}
	}
	return out, nil
}

// offsetLags is what each group has left of its topic by the offsets
// alone: the end offsets less the committed ones (the log start where the
// group has committed nothing, or less), summed over the partitions, markers
// and aborted records included. gaps[i] holds, for gts[i], each partition
// with something left: from (where the group goes on), to (the end offset).
func offsetLags(ctx context.Context, adm *kadm.Client, gts []groupTopic) (_ []topicLag, gaps []map[int32][2]int64, _ error) {
	out := make([]topicLag, 0, len(gts))
	for _, gt := range gts {
		starts, ends, err := kafka.PartitionBounds(ctx, adm, gt.topic)
		if err != nil {
			return nil, nil, err
		}
		committed, err := adm.FetchOffsets(ctx, gt.group)
		if err == nil {
			err = committed.Error()
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			committed, err = nil, nil // not joined yet: nothing committed
		}
		if err != nil {
			return nil, nil, fmt.Errorf("fetching the committed offsets of group %s: %w", gt.group, err)
		}
		l := topicLag{Group: gt.group, Topic: gt.topic}
		left := map[int32][2]int64{} // partition: committed, end
		for p, end := range ends {
			l.End += end
			at := starts[p]
			if c, ok := committed.Lookup(gt.topic, p); ok && c.At >= 0 {
				at = max(c.At, starts[p])
			}
			if at < end {
				left[p] = [2]int64{at, end}
				l.Records += end - at
			}
		}
		out = append(out, l)
		gaps = append(gaps, left)
	}
	return out, gaps, nil
}

// dataPast reports, for each partition of gaps (from: committed offset, to:
// end offset), whether a committed data record lies in [from, to), or the
// records there could not all be read within probeTimeout; a partition
// holding only transaction markers and aborted records there is false.
func dataPast(ctx context.Context, seeds []kgo.Opt, topic string, gaps map[int32][2]int64) (map[int32]bool, error) {
	start := map[int32]kgo.Offset{}
	for p, g := range gaps {
		start[p] = kgo.NewOffset().At(g[0])
	}
	cl, err := kgo.NewClient(append(seeds[:len(seeds):len(seeds)],
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(probeFetchBytes),
		kgo.FetchMaxPartitionBytes(probeFetchBytes),
	)...)
	if err != nil {
		return nil, fmt.Errorf("reading %s past the committed offsets: %w", topic, err)
	}
	defer cl.Close()
	data := map[int32]bool{}
	open := map[int32]bool{}
	for p := range gaps {
		open[p] = true
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	for len(open) > 0 {
		fs := cl.PollFetches(pctx)
		if pctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			g := gaps[r.Partition]
			if !open[r.Partition] || r.Offset < g[0] {
				return
			}
			if r.Offset < g[1] && !r.Attrs.IsControl() {
				data[r.Partition] = true
			}
			if data[r.Partition] || r.Offset >= g[1]-1 {
				delete(open, r.Partition)
			}
		})
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for p := range open {
		data[p] = true // not read in time: count it as left
	}
	return data, nil
}

// endOffsets lists the end offsets of topics' partitions: where records
// produced from now on start.
func endOffsets(ctx context.Context, cl *kgo.Client, topics ...string) (map[string]map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	out := map[string]map[int32]int64{}
	for _, t := range topics {
		_, ends, err := kafka.PartitionBounds(ctx, adm, t)
		if err != nil {
			return nil, err
		}
		out[t] = ends
	}
	return out, nil
}

// erroredEvents reads the dead-letter records on the error topics from
// the offsets given up to their ends now, and returns the event ids of
// the messages among want whose rows were not written.
func erroredEvents(ctx context.Context, cl *kgo.Client, seeds []kgo.Opt, from map[string]map[int32]int64, want map[string]bool) (map[string]bool, error) {
	out := map[string]bool{}
	for topic, parts := range from {
		_, ends, err := kafka.PartitionBounds(ctx, kadm.NewClient(cl), topic)
		if err != nil {
			return nil, err
		}
		start := map[int32]kgo.Offset{}
		open := map[int32]int64{}
		for p, end := range ends {
			if at := parts[p]; at < end {
				start[p] = kgo.NewOffset().At(at)
				open[p] = end
			}
		}
		if len(open) == 0 {
			continue
		}
		rc, err := kgo.NewClient(append(seeds[:len(seeds):len(seeds)],
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.KeepControlRecords(),
		)...)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", topic, err)
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		for len(open) > 0 && rctx.Err() == nil {
			fs := rc.PollFetches(rctx)
			fs.EachRecord(func(r *kgo.Record) {
				if end, ok := open[r.Partition]; ok && r.Offset >= end-1 {
					delete(open, r.Partition)
				}
				if r.Attrs.IsControl() {
					return
				}
				if id := deadLetterEventID(r.Value); id != "" && want[id] {
					out[id] = true
				}
			})
		}
		cancel()
		rc.Close()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// deadLetterEventID is the event_id of the message a dead-letter record is
// about, "" when the record does not decode, keeps no whole original, or
// says the message's row was written all the same.
func deadLetterEventID(value []byte) string {
	var rec dlq.Record
	if json.Unmarshal(value, &rec) != nil || rec.RowWritten {
		return ""
	}
	orig, whole := rec.OriginalBytes()
	if !whole {
		return ""
	}
	var ev struct {
		EventID string `json:"event_id"`
	}
	if json.Unmarshal(orig, &ev) != nil {
		return ""
	}
	return ev.EventID
}
