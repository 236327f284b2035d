package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/jsonx"
)

// eventID is the id of the run's i-th event.
func (r *run) eventID(i int) string { return "bench-" + r.id + "-" + strconv.Itoa(i) }

// eventIndex returns i for an id eventID made, or -1.
func (r *run) eventIndex(id string) int {
	rest, ok := strings.CutPrefix(id, "bench-"+r.id+"-")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(rest)
	if err != nil {
		return -1
	}
	return i
}

// assignment returns the assignment of the i-th event: with one lookup key
// the events spread over every assignment (the lookup key is the template,
// the same for all); with more, over the first Keys of them.
func (r *run) assignment(i int) int64 {
	if r.o.Keys > 1 {
		return r.assigns[i%r.o.Keys]
	}
	return r.assigns[i%len(r.assigns)]
}

var statuses = []string{"assigned", "in_progress", "completed"}

// payload appends the i-th event as the task_trigger plugin publishes it
// (SPEC.md's payload plus the tracked values as of the event), padded to
// about EventSize bytes, to b.
func (r *run) payload(b []byte, i int, at time.Time) []byte {
	a := r.assignment(i)
	status := statuses[i%len(statuses)]
	prev := ""
	if i%len(statuses) > 0 {
		prev = statuses[i%len(statuses)-1]
	}
	ts := at.UTC().Format(time.RFC3339Nano)
	created := at.Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	project := strconv.FormatInt(7000+a%400, 10)
	start := len(b)
	str := func(k, v string) {
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `":`...)
		b = jsonx.AppendString(b, v)
		b = append(b, ',')
	}
	num := func(k string, v int64) {
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, v, 10)
		b = append(b, ',')
	}
	event := "CUSTOM_TASK_ASSIGNED"
	if status == "completed" {
		event = "CUSTOM_TASK_COMPLETED"
	} else if status == "in_progress" {
		event = "CUSTOM_TASK_UPDATED"
	}
	b = append(b, '{')
	str("trigger_name", "iTel Cabinet Task Tracking")
	str("event_id", r.eventID(i))
	str("event_type", event)
	str("project_id", project)
	num("task_id", templateID)
	num("assignment_id", a)
	str("task_name", "iTel Cabinet Repair Form")
	str("task_status", status)
	str("timestamp", ts)
	if prev != "" {
		str("previous_status", prev)
	} else {
		b = append(b, `"previous_status":null,`...)
	}
	num("assigned_to_user_id", 1000+a%97)
	num("assigned_by_user_id", 7)
	str("task_created_at", created)
	if status == "completed" {
		str("task_completed_at", ts)
	} else {
		b = append(b, `"task_completed_at":null,`...)
	}
	b = append(b, `"task":{`...)
	num("assignment_id", a)
	num("task_id", templateID)
	str("project_id", project)
	str("status", status)
	num("assigned_to_user_id", 1000+a%97)
	num("assigned_by_user_id", 7)
	str("created_at", created)
	b = b[:len(b)-1]
	b = append(b, `},`...)
	str("task_fetched_at", ts)
	b = append(b, `"project":{`...)
	str("project_id", project)
	str("name", "Project "+project)
	str("status", "open")
	// The padding: a project's free text, so the event is about EventSize.
	const closing = `"notes":""}}`
	if pad := r.o.EventSize - (len(b) - start) - len(closing); pad > 0 {
		b = append(b, `"notes":"`...)
		for range pad {
			b = append(b, 'x')
		}
		b = append(b, `"}}`...)
	} else {
		b = b[:len(b)-1]
		b = append(b, `}}`...)
	}
	return b
}

// produced records when each record was produced, per partition by offset
// (the run's topics are fresh: offsets start at 0, one per record).
type produced struct {
	mu    sync.Mutex
	at    [][]time.Time
	last  []int64
	first time.Time
	err   error
}

func newProduced(parts int) *produced {
	p := &produced{at: make([][]time.Time, parts), last: make([]int64, parts)}
	for i := range p.last {
		p.last[i] = -1
	}
	return p
}

func (p *produced) add(r *kgo.Record, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.err == nil {
			p.err = err
		}
		return
	}
	if int(r.Partition) >= len(p.at) {
		return
	}
	at := p.at[r.Partition]
	for int64(len(at)) <= r.Offset {
		at = append(at, time.Time{})
	}
	at[r.Offset] = r.Timestamp
	p.at[r.Partition] = at
	p.last[r.Partition] = max(p.last[r.Partition], r.Offset)
}

// produce produces the run's events to its input topic: at o.Rate per
// second when set (each record's timestamp is when it was handed to the
// client), else as fast as the broker takes them.
func (r *run) produce(ctx context.Context, p *produced) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.DefaultProduceTopic(r.topics.input),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(20000), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	start := time.Now()
	p.first = start
	var period time.Duration
	if r.o.Rate > 0 {
		period = time.Second / time.Duration(r.o.Rate)
	}
	var buf []byte
	for i := range r.o.Events {
		if period > 0 {
			if d := time.Until(start.Add(time.Duration(i) * period)); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
		}
		now := time.Now()
		buf = r.payload(buf[:0], i, now)
		rec := &kgo.Record{Key: []byte(strconv.FormatInt(r.assignment(i), 10)), Value: append([]byte(nil), buf...), Timestamp: now}
		cl.Produce(ctx, rec, p.add)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return fmt.Errorf("bench: producing: %w", p.err)
	}
	return nil
}
