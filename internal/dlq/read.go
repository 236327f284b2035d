package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadOptions say which error records Read returns.
type ReadOptions struct {
	// ErrorTopic is read. Required.
	ErrorTopic string
	// Classes, when set, keeps only records of these error classes.
	Classes []string
	// Since and Until, when set, keep records that failed at or after
	// Since and before Until.
	Since, Until time.Time
	// Partition, when >= 0, reads only that partition; FromOffset starts
	// there (in every partition read).
	Partition  int32
	FromOffset int64
	// Limit stops after this many records (0: all).
	Limit int
}

// Entry is one error record as Read found it: where it is on the error
// topic and what it says. Record is nil when the value is not a
// dead-letter record (Raw holds it then).
type Entry struct {
	Partition int32
	Offset    int64
	Timestamp time.Time
	Record    *Record
	Raw       []byte
}

// Read returns the error records of o.ErrorTopic that pass its filters,
// from the log start (or o.FromOffset) to the end as it is when Read
// starts, ordered by partition and offset. It joins no consumer group and
// commits nothing: what it reads stays on the topic for replays.
func Read(ctx context.Context, cl *kgo.Client, seeds []kgo.Opt, o ReadOptions) ([]Entry, error) {
	if o.ErrorTopic == "" {
		return nil, errors.New("dlq: the error topic is required")
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, o.ErrorTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: reading the end of %s: %w", o.ErrorTopic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, o.ErrorTopic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: reading the start of %s: %w", o.ErrorTopic, err)
	}
	start := map[int32]kgo.Offset{}
	end := map[int32]int64{}
	ends.Each(func(e kadm.ListedOffset) {
		if o.Partition >= 0 && e.Partition != o.Partition {
			return
		}
		from := o.FromOffset
		if s, ok := starts.Lookup(o.ErrorTopic, e.Partition); ok && s.Offset > from {
			from = s.Offset
		}
		if from < e.Offset {
			start[e.Partition] = kgo.NewOffset().At(from)
			end[e.Partition] = e.Offset
		}
	})
	if len(start) == 0 {
		return nil, nil
	}
	consumer, err := kgo.NewClient(append(slices.Clone(seeds),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.ErrorTopic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	var out []Entry
	remaining := len(end)
	for remaining > 0 && (o.Limit == 0 || len(out) < o.Limit) {
		// Transaction markers take offsets no record has: a poll that
		// finds nothing more means the topic is read to its end.
		pollCtx, cancel := context.WithTimeout(ctx, drainWait)
		fs := consumer.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if fs.NumRecords() == 0 {
			break
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return out, fmt.Errorf("dlq: reading %s: %w", o.ErrorTopic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end[r.Partition] {
				return
			}
			if r.Offset+1 == end[r.Partition] {
				remaining--
			}
			if o.Limit > 0 && len(out) >= o.Limit {
				return
			}
			e := Entry{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp}
			var rec Record
			if err := json.Unmarshal(r.Value, &rec); err == nil && rec.Topic != "" {
				e.Record = &rec
			} else {
				e.Raw = r.Value
			}
			if o.keep(e) {
				out = append(out, e)
			}
		})
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return out, nil
}

// keep reports whether e passes the filters; a record that is not a
// dead-letter record passes only when no class or time is asked for.
func (o ReadOptions) keep(e Entry) bool {
	if e.Record == nil {
		return len(o.Classes) == 0 && o.Since.IsZero() && o.Until.IsZero()
	}
	r := e.Record
	switch {
	case len(o.Classes) > 0 && !slices.Contains(o.Classes, r.Class):
		return false
	case !o.Since.IsZero() && r.FailedAt.Before(o.Since):
		return false
	case !o.Until.IsZero() && !r.FailedAt.Before(o.Until):
		return false
	}
	return true
}
