package dlq

import (
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Source is the consumed message a record is about.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	// Value is the message as consumed: the record keeps it as its
	// original.
	Value []byte
	// Attempt is the failure count (AttemptOf); below 1 counts as 1.
	Attempt int
}

// Failure says what failed on a message.
type Failure struct {
	// Handler is the step that failed (a handler type, "enrich").
	Handler string
	// Class is one of the Class constants.
	Class string
	// Rule names what failed when that helps (a field rule, an endpoint).
	Rule string
	// Err is the cause; its text is the record's error_message.
	Err error
	// RowWritten: the message's row was still written (see
	// Record.RowWritten).
	RowWritten bool
}

// NewRecord returns worker's dead-letter record of failure f of the
// message src, failed at now, with the original kept.
func NewRecord(worker string, src Source, f Failure, now time.Time) *Record {
	r := &Record{
		Worker:     worker,
		Key:        string(src.Key),
		Topic:      src.Topic,
		Partition:  src.Partition,
		Offset:     src.Offset,
		Handler:    f.Handler,
		Class:      f.Class,
		Rule:       f.Rule,
		RowWritten: f.RowWritten,
		Attempt:    max(src.Attempt, 1),
		FailedAt:   now.UTC(),
	}
	if f.Err != nil {
		r.Message = f.Err.Error()
	}
	r.SetOriginal(src.Value)
	return r
}

// KafkaRecord encodes r as a record for errorTopic, keyed by RecordKey,
// with a value of at most maxValueBytes (see Marshal). Should even the
// fixed fields not fit (a limit under a few hundred bytes), the value keeps
// those alone: no original and the message cut to 200 bytes, under
// DefaultMaxRecordBytes.
func (r *Record) KafkaRecord(errorTopic string, maxValueBytes int) *kgo.Record {
	v, err := r.Marshal(maxValueBytes)
	if err != nil {
		r.SetOriginal(nil)
		r.Message = r.Message[:min(len(r.Message), 200)]
		v, _ = r.Marshal(DefaultMaxRecordBytes)
	}
	return &kgo.Record{Topic: errorTopic, Key: r.RecordKey(), Value: v}
}

// SourceKeyLen is len(SourceKey(topic, partition, offset)), without
// building the key.
func SourceKeyLen(topic string, partition int32, offset int64) int {
	var buf [40]byte
	return len(topic) + 2 + len(strconv.AppendInt(buf[:0], int64(partition), 10)) + len(strconv.AppendInt(buf[20:20], offset, 10))
}
