// Package dlq defines kpipe's dead-letter records — what a worker publishes
// to its error topic for a message it could not fully process — and replays
// them into the topics they came from.
//
// A record keeps the message's original bytes, so nothing is lost: once the
// cause is fixed (a schema, a rule, the ClaimX API), Replay re-injects the
// messages whose rows were not written.
//
//	rec := dlq.Record{Worker: "w", Topic: "in", Partition: 0, Offset: 7,
//		Handler: "validation", Class: "validation", Message: "task_id: want 32513"}
//	rec.SetOriginal(value)
//	b, _ := json.Marshal(rec)
package dlq

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// AttemptHeader is the Kafka header a replayed record carries: the attempt
// number its next failure, if any, is recorded with.
const AttemptHeader = "kpipe-attempt"

// Record is one dead-letter record, as JSON on an error topic.
type Record struct {
	// Worker is the worker that failed the message.
	Worker string `json:"worker"`
	// OriginalBase64 is the message value exactly as consumed (standard
	// base64 in JSON).
	OriginalBase64 []byte `json:"original_base64"`
	// Original is the value as JSON when it is JSON, else null.
	Original json.RawMessage `json:"original"`
	// Key is the message key.
	Key string `json:"key,omitempty"`
	// Topic, Partition and Offset say where the message was consumed.
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	// Handler is the step that failed; Class the kind of failure
	// (malformed, validation, lookup, schema_conflict, ...); Rule the rule
	// that failed, when one did.
	Handler string `json:"handler"`
	Class   string `json:"error_class"`
	Rule    string `json:"rule,omitempty"`
	Message string `json:"error_message"`
	// RowWritten is true when the message's row was still written (a
	// lookup failure with on_error log_and_continue): replaying it would
	// write the row twice.
	RowWritten bool `json:"row_written"`
	// Attempt counts how often the message has failed: 1 the first time,
	// one more after each replay.
	Attempt  int       `json:"attempt"`
	FailedAt time.Time `json:"failed_at"`
}

// SetOriginal records value as the original message, and as JSON too when
// it is valid JSON.
func (r *Record) SetOriginal(value []byte) {
	r.OriginalBase64 = value
	if json.Valid(value) {
		r.Original = json.RawMessage(value)
	} else {
		r.Original = nil
	}
}

// AttemptOf returns the attempt a failure of rec is: one more than the
// replay header says, or 1.
func AttemptOf(rec *kgo.Record) int {
	for _, h := range rec.Headers {
		if h.Key == AttemptHeader {
			if n, err := strconv.Atoi(string(h.Value)); err == nil && n > 0 {
				return n
			}
		}
	}
	return 1
}
