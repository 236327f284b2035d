package pipeline

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// AttemptHeader carries the delivery attempt of a replayed message; the
// error record reports it plus one (1 for a message never replayed).
const AttemptHeader = "kpipe-attempt"

// ErrorRecord is the value published to a worker's error topic for each
// failure: the original message (bytes, and JSON when it decoded), where it
// came from, and what failed.
type ErrorRecord struct {
	Worker string `json:"worker"`
	// OriginalBase64 is the message value, base64 (standard encoding).
	OriginalBase64 []byte `json:"original_base64"`
	// Original is the message decoded as JSON, or null when it is not JSON.
	Original  json.RawMessage `json:"original"`
	Key       string          `json:"key,omitempty"`
	Topic     string          `json:"topic"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Handler   string          `json:"handler"`
	Class     string          `json:"error_class"`
	Rule      string          `json:"rule,omitempty"`
	Message   string          `json:"error_message"`
	// RowWritten is true when the event's row was still written (a lookup
	// failure with on_error log_and_continue).
	RowWritten bool      `json:"row_written"`
	Attempt    int       `json:"attempt"`
	FailedAt   time.Time `json:"failed_at"`
}

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

func attemptOf(headers []kgo.RecordHeader) int {
	for _, h := range headers {
		if h.Key == AttemptHeader {
			if n, err := strconv.Atoi(string(h.Value)); err == nil && n >= 0 {
				return n + 1
			}
		}
	}
	return 1
}

// errorRecord builds the error-topic record of one failure of ev.
func (w *Worker) errorRecord(ev *Event, he *HandlerError, rowWritten bool, attempt int, now time.Time) *kgo.Record {
	rec := ErrorRecord{
		Worker:         w.cfg.Name,
		OriginalBase64: ev.Raw,
		Original:       json.RawMessage("null"),
		Key:            string(ev.Key),
		Topic:          ev.Topic,
		Partition:      ev.Partition,
		Offset:         ev.Offset,
		Handler:        he.Handler,
		Class:          he.Class,
		Rule:           he.Rule,
		RowWritten:     rowWritten,
		Attempt:        attempt,
		FailedAt:       now.UTC(),
	}
	if he.Err != nil {
		rec.Message = he.Err.Error()
	}
	if ev.Fields != nil && json.Valid(ev.Raw) {
		rec.Original = json.RawMessage(ev.Raw)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		// Only a value json cannot encode gets here; keep the bytes.
		rec.Original = json.RawMessage("null")
		b, _ = json.Marshal(rec)
	}
	return &kgo.Record{Topic: w.cfg.ErrorTopic, Key: ev.Key, Value: b}
}

// successRecord builds the success-topic record of a committed event.
func (w *Worker) successRecord(ev *Event, table string, version int64, now time.Time) *kgo.Record {
	rec := SuccessRecord{
		Worker:       w.cfg.Name,
		EventID:      ev.Fields["event_id"],
		TaskID:       ev.Fields["task_id"],
		AssignmentID: ev.Fields["assignment_id"],
		TaskStatus:   ev.Fields["task_status"],
		Table:        table,
		TableVersion: version,
		Topic:        ev.Topic,
		Partition:    ev.Partition,
		Offset:       ev.Offset,
		ProcessedAt:  now.UTC(),
	}
	b, _ := json.Marshal(rec) // scalars only
	return &kgo.Record{Topic: w.cfg.SuccessTopic, Key: ev.Key, Value: b}
}
