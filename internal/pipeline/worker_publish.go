package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/clock"
	"kpipe/internal/dlq"
	"kpipe/internal/jsonx"
)

// SuccessRecord is the value published to a worker's success topic for
// each event once its row is committed: the keys below, and after worker
// the event fields that the worker's success_record.fields names, each
// under its name (null when the event has none).
type SuccessRecord struct {
	Worker string `json:"worker"`
	// Fields are the configured event fields, by name: decoding fills it
	// with every key that is not one of the others.
	Fields       map[string]any `json:"-"`
	Table        string         `json:"table,omitempty"`
	TableVersion int64          `json:"table_version"`
	Topic        string         `json:"topic"`
	Partition    int32          `json:"partition"`
	Offset       int64          `json:"offset"`
	ProcessedAt  time.Time      `json:"processed_at"`
}

// UnmarshalJSON decodes a success record, the configured fields into
// Fields.
func (r *SuccessRecord) UnmarshalJSON(b []byte) error {
	type plain SuccessRecord
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for _, k := range [...]string{"worker", "table", "table_version", "topic", "partition", "offset", "processed_at"} {
		delete(all, k)
	}
	*r = SuccessRecord(p)
	r.Fields = all
	return nil
}

// successField is a field of the success records (success_record.fields):
// its key as JSON, encoded once, and its path in the event.
type successField struct {
	key  []byte // ,"name":
	path keptPath
}

// newSuccessFields compiles the success record's fields against the
// fields a buffered event keeps (retainedFields).
func newSuccessFields(names, retained []string) []successField {
	fs := make([]successField, len(names))
	for i, name := range names {
		k := jsonx.AppendString([]byte(","), name)
		fs[i] = successField{key: append(k, ':'), path: newKeptPath(name, retained)}
	}
	return fs
}

// publisher builds and publishes a worker's error and success records.
//
// Error records are dead-letter records (dlq.Record) with the original
// message kept once and bounded by the error topic's size limit; success
// records are SuccessRecord JSON. Both are keyed by their source message's
// "topic/partition/offset" (dlq.SourceKey): they are published at least
// once, and a record a restart published again has the same key.
//
// It is safe for concurrent use once cl is set (Run sets it before any
// publish).
type publisher struct {
	name, errorTopic, successTopic string
	// fields are what success records carry of their event.
	fields []successField
	log    *slog.Logger
	errs   *prometheus.CounterVec
	// dead reports whether the worker was stopped the way a crash would:
	// failures of asynchronous success records are then not reported.
	dead func() bool

	cl *kgo.Client
	// errLimit is the error topic's record size limit (0: unknown).
	errLimit atomic.Int64
	// onProduced is called with each asynchronous success record's result.
	onProduced func(*kgo.Record, error)
}

// successRecord builds the success-topic record of a committed event.
func (p *publisher) successRecord(ev *Event, table string, version int64, now time.Time) *kgo.Record {
	enc := p.newSuccessEncoder(table, version, now)
	return &kgo.Record{Topic: p.successTopic, Key: appendSourceKey(nil, ev), Value: enc.append(nil, ev)}
}

// appendSourceKey appends dlq.SourceKey of ev's source message,
// "topic/partition/offset", to dst.
func appendSourceKey(dst []byte, ev *Event) []byte {
	return dlq.AppendSourceKey(dst, ev.Topic, ev.Partition, ev.Offset)
}

// successEncoder writes SuccessRecord JSON with appends, the bytes
// encoding/json would give for it, bar HTML escaping: the parts common to
// every record of a flush are encoded once.
type successEncoder struct {
	fields   []successField
	head     []byte // {"worker":"…"
	tail     []byte // ,"processed_at":"…"}
	table    []byte // ,"table":"…" or nothing
	version  []byte // ,"table_version":N,"topic":
	fixedLen int
}

func (p *publisher) newSuccessEncoder(table string, version int64, now time.Time) *successEncoder {
	e := &successEncoder{fields: p.fields}
	e.head = append(e.head, `{"worker":`...)
	e.head = jsonx.AppendString(e.head, p.name)
	if table != "" {
		e.table = append(e.table, `,"table":`...)
		e.table = jsonx.AppendString(e.table, table)
	}
	e.version = append(e.version, `,"table_version":`...)
	e.version = strconv.AppendInt(e.version, version, 10)
	e.version = append(e.version, `,"topic":`...)
	e.tail = append(e.tail, `,"processed_at":`...)
	ts, _ := now.UTC().MarshalJSON()
	e.tail = append(e.tail, ts...)
	e.tail = append(e.tail, '}')
	e.fixedLen = len(e.head) + len(e.table) + len(e.version) + len(e.tail)
	for _, f := range e.fields {
		e.fixedLen += len(f.key)
	}
	return e
}

// append appends ev's success record to dst.
func (e *successEncoder) append(dst []byte, ev *Event) []byte {
	dst = append(dst, e.head...)
	for i := range e.fields {
		f := &e.fields[i]
		dst = append(dst, f.key...)
		v, _ := f.path.get(ev)
		dst = appendJSONValue(dst, v)
	}
	dst = append(dst, e.table...)
	dst = append(dst, e.version...)
	dst = jsonx.AppendString(dst, ev.Topic)
	dst = append(dst, `,"partition":`...)
	dst = strconv.AppendInt(dst, int64(ev.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, ev.Offset, 10)
	return append(dst, e.tail...)
}

// appendJSONValue appends a decoded event value as JSON; scalars directly,
// anything else through encoding/json.
func appendJSONValue(dst []byte, v any) []byte {
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return jsonx.AppendString(dst, t)
	case int64:
		return strconv.AppendInt(dst, t, 10)
	case bool:
		return strconv.AppendBool(dst, t)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return append(dst, "null"...)
	}
	return append(dst, b...)
}

// successRecords builds the success records of evs, keyed by their source
// offset; records and their bytes are allocated in one piece.
func (p *publisher) successRecords(evs []*Event, table string, version int64, now time.Time) []kgo.Record {
	enc := p.newSuccessEncoder(table, version, now)
	recs := make([]kgo.Record, len(evs))
	buf := make([]byte, 0, len(evs)*(enc.fixedLen+200))
	for i, ev := range evs {
		start := len(buf)
		buf = enc.append(buf, ev)
		keyStart := len(buf)
		buf = appendSourceKey(buf, ev)
		recs[i] = kgo.Record{Topic: p.successTopic, Key: buf[keyStart:len(buf):len(buf)], Value: buf[start:keyStart:keyStart]}
	}
	return recs
}

// produceSync produces recs and waits for them, retrying with backoff until
// ctx is done.
func (p *publisher) produceSync(ctx context.Context, recs []*kgo.Record) error {
	bo := newBackoff()
	for {
		// kgo fails buffered records on ctx's end only once a broker
		// connection is up: wait for ctx too, so that a stop with the
		// broker gone ends within its deadline (Close fails the rest).
		done := make(chan error, 1)
		go func() { done <- p.cl.ProduceSync(ctx, recs...).FirstErr() }()
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if isFatalKafka(err) || errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) || errors.Is(err, kerr.InvalidRecord) {
			// Retrying sends the same refused records again, forever.
			return fmt.Errorf("%w: worker %s: kafka refused the records: %w", ErrFatal, p.name, err)
		}
		p.errs.WithLabelValues("publish").Inc()
		d := bo.NextBackOff()
		p.log.Warn("publish_failed", "records", len(recs), "retry_in", d, "error", err)
		if clock.Sleep(ctx, d) != nil {
			return err
		}
	}
}

func (p *publisher) onSuccessProduced(r *kgo.Record, err error) {
	if err != nil && !p.dead() {
		p.errs.WithLabelValues("publish").Inc()
		p.log.Warn("success_record_failed", "topic", r.Topic, "error", err)
	}
}

// produceAsync produces recs without waiting; failures are counted and
// logged by onProduced.
func (p *publisher) produceAsync(ctx context.Context, recs []kgo.Record) {
	for i := range recs {
		p.cl.Produce(ctx, &recs[i], p.onProduced)
	}
}

func (w *Worker) succeeded(ctx context.Context, batches []*partBatch, table string, version int64) {
	for _, b := range batches {
		w.succeededEvents(ctx, b.out, table, version)
	}
}

// succeededEvents counts committed events and publishes their success
// records (asynchronously: they are reports, not part of the commit). The
// records and their values are allocated in one piece per call.
func (w *Worker) succeededEvents(ctx context.Context, evs []*Event, table string, version int64) {
	if len(evs) == 0 {
		return
	}
	now := time.Now()
	w.countSucceeded(evs, table, now)
	if w.cfg.SuccessTopic == "" {
		return
	}
	pctx := context.WithoutCancel(ctx)
	w.pub.produceAsync(pctx, w.pub.successRecords(evs, table, version, now))
}

// countSucceeded counts events whose outcome is committed.
func (w *Worker) countSucceeded(evs []*Event, table string, now time.Time) {
	if len(evs) == 0 {
		return
	}
	w.processed.Add(float64(len(evs)))
	if table != "" {
		w.deltaWrites.Add(float64(len(evs)))
	}
	byStatus := map[string]int{}
	for _, ev := range evs {
		w.latency.Observe(now.Sub(ev.Received).Seconds())
		if w.cfg.StatusField == "" {
			continue
		}
		if s, ok := w.status.topLevel(ev).(string); ok {
			byStatus[s]++
		}
	}
	for s, n := range byStatus {
		w.rowsByStatus.WithLabelValues(w.statusLabel.Value(s)).Add(float64(n))
	}
}

// publishCommit is the CommitPublisher of the worker's flusher: before a
// table commit moves the txn offsets past them, the error records of the
// rows it rejects and the success records of the rows it holds are in
// Kafka. A crash after it and before the commit publishes them again after
// the restart (at least once, keyed by source offset).
func (w *Worker) publishCommit(ctx context.Context, pc *PendingCommit) error {
	now := time.Now()
	var recs []*kgo.Record
	if w.cfg.ErrorTopic != "" {
		for _, r := range pc.Rejected {
			recs = append(recs, w.pub.errorRecord(r.Event, r.Err, false, now))
		}
	}
	if w.cfg.SuccessTopic != "" && len(pc.Written) > 0 {
		succ := w.pub.successRecords(pc.Written, pc.Table, pc.Version, now)
		for i := range succ {
			recs = append(recs, &succ[i])
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if err := w.pub.produceSync(ctx, recs); err != nil {
		return fmt.Errorf("publishing %d error and success records before the commit: %w", len(recs), err)
	}
	return nil
}
