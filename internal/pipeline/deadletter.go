package pipeline

// This file is where a message becomes an error record: the failure type
// handlers return or record (HandlerError), the failures the worker finds
// itself (a message too large or not decodable, a row the table refuses),
// and the dead-letter records built from them and published to the error
// topic (dlq.Record, through dlq.NewRecord).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/delta"
	"kpipe/internal/dlq"
	"kpipe/internal/jsonx"
)

// HandlerError is a failure of one handler on one event. A handler returns
// it (or any error, which the chain wraps with class dlq.ClassHandler) to
// send the event to the error topic, or records it on the event with
// Event.Record.
type HandlerError struct {
	// Handler is the handler's type name (transform, lookup, ...); the chain
	// fills it in when empty.
	Handler string
	// Class is one of the dlq.Class constants.
	Class string
	// Rule names what failed when that helps (a field rule "task_id.equals",
	// a lookup endpoint).
	Rule string
	Err  error
}

func (e *HandlerError) Error() string {
	var b strings.Builder
	if e.Handler != "" {
		b.WriteString(e.Handler)
		b.WriteString(": ")
	}
	b.WriteString(e.Class)
	if e.Rule != "" {
		b.WriteString(" ")
		b.WriteString(e.Rule)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *HandlerError) Unwrap() error { return e.Err }

// Errorf returns a *HandlerError of class with a formatted cause.
func Errorf(class, rule, format string, args ...any) *HandlerError {
	return &HandlerError{Class: class, Rule: rule, Err: fmt.Errorf(format, args...)}
}

// asHandlerError returns err as a *HandlerError of handler, classifying
// unknown errors as dlq.ClassHandler.
func asHandlerError(handler string, err error) *HandlerError {
	var he *HandlerError
	if errors.As(err, &he) {
		if he.Handler == "" {
			c := *he
			c.Handler = handler
			return &c
		}
		return he
	}
	return &HandlerError{Handler: handler, Class: dlq.ClassHandler, Err: err}
}

// handlerDecode names the worker's own decoding step in error records.
const handlerDecode = "decode"

// tooLarge is the failure of a message of n bytes, over max_message_bytes.
func (w *Worker) tooLarge(n int) *HandlerError {
	return &HandlerError{Handler: handlerDecode, Class: dlq.ClassTooLarge, Err: fmt.Errorf("message is %d bytes, over max_message_bytes %d", n, w.maxBytes)}
}

// undecodable is the failure of a message that does not decode: not a
// JSON object or not UTF-8 (malformed), or nested deeper than
// max_nesting_depth (too_deep).
func (w *Worker) undecodable(err error) *HandlerError {
	class := dlq.ClassMalformed
	if errors.Is(err, jsonx.ErrTooDeep) {
		class = dlq.ClassTooDeep
		err = fmt.Errorf("%w (max_nesting_depth %d)", err, w.maxDepth)
	}
	return &HandlerError{Handler: handlerDecode, Class: class, Err: err}
}

// reject sends ev, which failed before the chain, to the error topic.
func (b *partBatch) reject(ev *Event, he *HandlerError) {
	ev.Errors = append(ev.Errors, he)
	b.failed = append(b.failed, ev)
	b.malformed++
}

// rejectionError is the handler error of a row the table refused.
func rejectionError(se *delta.SchemaError) *HandlerError {
	class := dlq.ClassSchemaConflict
	if errors.Is(se, delta.ErrTooDeep) {
		class = dlq.ClassTooDeep
	}
	return &HandlerError{Handler: TypeDeltaWriter, Class: class, Rule: se.Path, Err: se}
}

// errorRecord builds the error-topic record of one failure of ev: the
// dead-letter record with the original kept once, bounded by the error
// topic's message size limit, keyed by the source message's
// topic/partition/offset so that consumers deduplicate records a restart
// published again.
func (p *publisher) errorRecord(ev *Event, he *HandlerError, rowWritten bool, now time.Time) *kgo.Record {
	rec := dlq.NewRecord(p.name,
		dlq.Source{Topic: ev.Topic, Partition: ev.Partition, Offset: ev.Offset, Key: ev.Key, Value: ev.Raw, Attempt: ev.Attempt},
		dlq.Failure{Handler: he.Handler, Class: he.Class, Rule: he.Rule, Err: he.Err, RowWritten: rowWritten}, now)
	return rec.KafkaRecord(p.errorTopic, p.errorMaxBytes())
}

// errorMaxBytes is the most an error record's value may take: the error
// topic's max.message.bytes as the broker reported it at start, or
// dlq.DefaultMaxRecordBytes, and never more than the producer sends in one
// batch (kgo's ProducerBatchMaxBytes, which the client checks before
// sending), each less room for the batch around the value.
func (p *publisher) errorMaxBytes() int {
	limit := dlq.DefaultMaxRecordBytes
	if n := p.errLimit.Load(); n > 0 {
		limit = int(n)
	}
	return min(limit, producerBatchMaxBytes-recordOverhead)
}

// recordOverhead is what a record batch, its headers and the key add
// around a value; the value must leave it room under max.message.bytes.
const recordOverhead = 1024

// producerBatchMaxBytes is kgo's default ProducerBatchMaxBytes: a record
// larger than it is refused by the client itself (MESSAGE_TOO_LARGE),
// whatever the topic allows.
const producerBatchMaxBytes = 1_000_012

// learnErrorLimit asks the broker for the error topic's max.message.bytes.
// A failure keeps the default: the limit only bounds error records.
func (p *publisher) learnErrorLimit(ctx context.Context, adm *kadm.Client) {
	if p.errorTopic == "" {
		return
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, p.errorTopic)
	if err != nil {
		return
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			if n, err := strconv.Atoi(*c.Value); err == nil && n > 2*recordOverhead {
				p.errLimit.Store(int64(min(n-recordOverhead, 1<<30)))
			}
		}
	}
}

// publishErrors publishes an error record for every failed event and every
// error recorded on an event that went on, and waits until Kafka has them:
// no offset covering them is committed before.
func (w *Worker) publishErrors(ctx context.Context, batches []*partBatch) error {
	var recs []*kgo.Record
	now := time.Now()
	lookups, lookupErr := 0, error(nil)
	for _, b := range batches {
		for _, ev := range b.failed {
			he := ev.Errors[len(ev.Errors)-1]
			for _, rec := range ev.Errors[:len(ev.Errors)-1] {
				recs = append(recs, w.pub.errorRecord(ev, rec, false, now))
			}
			recs = append(recs, w.pub.errorRecord(ev, he, false, now))
		}
		for _, ev := range b.out {
			for _, he := range ev.Errors {
				recs = append(recs, w.pub.errorRecord(ev, he, true, now))
				w.errs.WithLabelValues(he.Class).Inc()
				if he.Class == dlq.ClassLookup {
					lookups++
					lookupErr = he.Err
				}
			}
		}
	}
	if lookups > 0 {
		w.health.lookupFailed(lookups, lookupErr, now)
	}
	if len(recs) == 0 || w.cfg.ErrorTopic == "" {
		return nil
	}
	if err := w.pub.produceSync(ctx, recs); err != nil {
		return fmt.Errorf("publishing %d error records: %w", len(recs), err)
	}
	w.errRecordsC.Add(float64(len(recs)))
	return nil
}
