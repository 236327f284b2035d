package pipeline

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/dlq"
)

// ErrorRecord is the value published to a worker's error topic for each
// failure: the dead-letter record every worker publishes (the original
// message, where it came from, what failed), so that kpipe dlq replay
// serves them all.
type ErrorRecord = dlq.Record

// SuccessRecord is the value published to a worker's success topic for
// each event once its row is committed.
type SuccessRecord struct {
	Worker       string    `json:"worker"`
	EventID      any       `json:"event_id"`
	TaskID       any       `json:"task_id"`
	AssignmentID any       `json:"assignment_id"`
	TaskStatus   any       `json:"task_status,omitempty"`
	Table        string    `json:"table,omitempty"`
	TableVersion int64     `json:"table_version"`
	Topic        string    `json:"topic"`
	Partition    int32     `json:"partition"`
	Offset       int64     `json:"offset"`
	ProcessedAt  time.Time `json:"processed_at"`
}

// errorRecord builds the error-topic record of one failure of ev: the
// dead-letter record with the original kept once, bounded by the error
// topic's message size limit, keyed by the source message's
// topic/partition/offset so that consumers deduplicate records a restart
// published again.
func (w *Worker) errorRecord(ev *Event, he *HandlerError, rowWritten bool, now time.Time) *kgo.Record {
	rec := ErrorRecord{
		Worker:     w.cfg.Name,
		Key:        string(ev.Key),
		Topic:      ev.Topic,
		Partition:  ev.Partition,
		Offset:     ev.Offset,
		Handler:    he.Handler,
		Class:      he.Class,
		Rule:       he.Rule,
		RowWritten: rowWritten,
		Attempt:    max(ev.Attempt, 1),
		FailedAt:   now.UTC(),
	}
	if he.Err != nil {
		rec.Message = he.Err.Error()
	}
	rec.SetOriginal(ev.Raw)
	b, err := rec.Marshal(w.errorMaxBytes())
	if err != nil {
		// Only a limit below a few hundred bytes gets here.
		b, _ = rec.Marshal(dlq.DefaultMaxRecordBytes)
	}
	return &kgo.Record{Topic: w.cfg.ErrorTopic, Key: rec.RecordKey(), Value: b}
}

// errorMaxBytes is the most an error record may take: the error topic's
// max.message.bytes as the broker reported it at start, less room for the
// record batch around it, or dlq.DefaultMaxRecordBytes.
func (w *Worker) errorMaxBytes() int {
	if n := w.errLimit.Load(); n > 0 {
		return int(n)
	}
	return dlq.DefaultMaxRecordBytes
}

// recordOverhead is what a record batch, its headers and the key add
// around a value; the value must leave it room under max.message.bytes.
const recordOverhead = 1024

// learnErrorLimit asks the broker for the error topic's max.message.bytes.
// A failure keeps the default: the limit only bounds error records.
func (w *Worker) learnErrorLimit(ctx context.Context) {
	if w.cfg.ErrorTopic == "" {
		return
	}
	rcs, err := w.adm.DescribeTopicConfigs(ctx, w.cfg.ErrorTopic)
	if err != nil {
		return
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			if n, err := strconv.Atoi(*c.Value); err == nil && n > 2*recordOverhead {
				w.errLimit.Store(int64(min(n-recordOverhead, 1<<30)))
			}
		}
	}
}

// successRecord builds the success-topic record of a committed event.
func (w *Worker) successRecord(ev *Event, table string, version int64, now time.Time) *kgo.Record {
	enc := w.newSuccessEncoder(table, version, now)
	return &kgo.Record{Topic: w.cfg.SuccessTopic, Key: appendSourceKey(nil, ev), Value: enc.append(nil, ev)}
}

// appendSourceKey appends dlq.SourceKey of ev's source message,
// "topic/partition/offset", to dst.
func appendSourceKey(dst []byte, ev *Event) []byte {
	dst = append(dst, ev.Topic...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(ev.Partition), 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, ev.Offset, 10)
}

// successEncoder writes SuccessRecord JSON with appends, the bytes
// encoding/json would give for it, bar HTML escaping: the parts common to
// every record of a flush are encoded once.
type successEncoder struct {
	head     []byte // {"worker":"…","event_id":
	tail     []byte // ,"processed_at":"…"}
	table    []byte // ,"table":"…" or nothing
	version  []byte // ,"table_version":N,"topic":
	fixedLen int
}

func (w *Worker) newSuccessEncoder(table string, version int64, now time.Time) *successEncoder {
	e := &successEncoder{}
	e.head = append(e.head, `{"worker":`...)
	e.head = claimx.AppendJSONString(e.head, w.cfg.Name)
	e.head = append(e.head, `,"event_id":`...)
	if table != "" {
		e.table = append(e.table, `,"table":`...)
		e.table = claimx.AppendJSONString(e.table, table)
	}
	e.version = append(e.version, `,"table_version":`...)
	e.version = strconv.AppendInt(e.version, version, 10)
	e.version = append(e.version, `,"topic":`...)
	e.tail = append(e.tail, `,"processed_at":`...)
	ts, _ := now.UTC().MarshalJSON()
	e.tail = append(e.tail, ts...)
	e.tail = append(e.tail, '}')
	e.fixedLen = len(e.head) + len(e.table) + len(e.version) + len(e.tail)
	return e
}

// append appends ev's success record to dst.
func (e *successEncoder) append(dst []byte, ev *Event) []byte {
	dst = append(dst, e.head...)
	dst = appendJSONValue(dst, ev.Fields["event_id"])
	dst = append(dst, `,"task_id":`...)
	dst = appendJSONValue(dst, ev.Fields["task_id"])
	dst = append(dst, `,"assignment_id":`...)
	dst = appendJSONValue(dst, ev.Fields["assignment_id"])
	if st := ev.Fields["task_status"]; st != nil {
		dst = append(dst, `,"task_status":`...)
		dst = appendJSONValue(dst, st)
	}
	dst = append(dst, e.table...)
	dst = append(dst, e.version...)
	dst = claimx.AppendJSONString(dst, ev.Topic)
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
		return claimx.AppendJSONString(dst, t)
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
