package enrich

// This file is where an event becomes an error record: the classes the
// enrichment worker records, the checks of the records plugins make, and
// the dead-letter records (dlq.Record, through dlq.NewRecord) published to
// claimx.enrichment.errors, cut smaller each time Kafka refuses one.

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/dlq"
	"kpipe/internal/httpconn"
)

// classes are the error classes the enrichment worker records: each labels
// kpipe_enrich_events_failed_total from the start.
var classes = []string{
	dlq.ClassMalformed, dlq.ClassUnknownEventType, dlq.ClassNotFound, dlq.ClassAPIUnavailable,
	dlq.ClassLookupFailed, dlq.ClassPluginFailed, dlq.ClassTooLarge, dlq.ClassTooDeep, dlq.ClassPublishRefused,
}

// handlerEnrich names the enrichment step in error records.
const handlerEnrich = "enrich"

// errNotUTF8 is the cause of a message that is not valid UTF-8.
var errNotUTF8 = errors.New("message is not valid UTF-8")

// refusal is what Kafka refused for one source record; it survives the
// aborted transaction so that the record's next processing avoids it.
type refusal struct {
	output error // why a plugin record of this event was refused
	level  int   // error records of this event refused so far
}

// maxRefusals is how many error records of one event Kafka may refuse,
// each smaller than the last, before the worker stops.
const maxRefusals = 3

// checkSize fails, with the class of the failure, when a record of recs is
// over Options.MaxRecordBytes or Kafka refused one for this event before.
func (p *processor) checkSize(src *kgo.Record, recs []*kgo.Record) (string, error) {
	for _, r := range recs {
		if n := recordSize(r); n > p.o.MaxRecordBytes {
			return dlq.ClassTooLarge, fmt.Errorf("record for %s is %d bytes, over the limit of %d", r.Topic, n, p.o.MaxRecordBytes)
		}
	}
	if len(p.refused) > 0 {
		if cause := p.refused[keyOf(src)].output; cause != nil {
			class := dlq.ClassPublishRefused
			if isTooLarge(cause) {
				class = dlq.ClassTooLarge
			}
			return class, fmt.Errorf("kafka refused the record for %s (%d bytes): %w", recs[0].Topic, recordSize(recs[0]), cause)
		}
	}
	return "", nil
}

// isTooLarge reports whether a produce error says the record is too large.
func isTooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

func recordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// addError adds the error record of the failed item it, at index i of the
// batch.
func (p *processor) addError(b *batch, i int32, it *item) {
	b.failed[it.class]++
	if b.firstErr == nil {
		b.firstErr = it.err
	}
	b.send = append(b.send, p.errorRecord(it))
	b.meta = append(b.meta, sendMeta{item: i, errRec: true})
}

// classOf is the class of a failed lookup.
func classOf(err error) string {
	switch {
	case httpconn.IsNotFound(err):
		return dlq.ClassNotFound
	case httpconn.IsRetryable(err):
		return dlq.ClassAPIUnavailable
	}
	return dlq.ClassLookupFailed
}

// errorRecordLimit is the size limit of an error record of src: the
// configured maximum, smaller each time Kafka refused one for this event.
func (p *processor) errorRecordLimit(src *kgo.Record) int {
	limit := p.o.MaxRecordBytes
	if len(p.refused) > 0 {
		switch p.refused[keyOf(src)].level {
		case 0:
		case 1:
			limit /= 8
		default:
			limit = 4 << 10
		}
	}
	return limit
}

// errorRecord builds the error-topic record of a failed event: the
// dead-letter record, key and value within the limit, keyed by its source
// topic/partition/offset.
func (p *processor) errorRecord(it *item) *kgo.Record {
	r := it.rec
	er := dlq.NewRecord(p.o.Name,
		dlq.Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Attempt: dlq.AttemptOf(r)},
		dlq.Failure{Handler: handlerEnrich, Class: it.class, Err: it.err}, time.Now())
	return er.KafkaRecord(p.o.ErrorTopic, p.errorRecordLimit(r)-dlq.SourceKeyLen(r.Topic, r.Partition, r.Offset))
}

// refuse records that Kafka refused the record at send index i, so that the
// event's next processing avoids it. It fails with ErrRecordRefused once an
// event's error records were refused maxRefusals times.
func (p *processor) refuse(b *batch, i int, cause error) error {
	m := b.meta[i]
	src := p.items[m.item].rec
	k := keyOf(src)
	ref := p.refused[k]
	if !m.errRec {
		ref.output = cause
	} else {
		ref.level++
		if ref.level >= maxRefusals {
			return fmt.Errorf("%w: error record of %s/%d/%d refused %d times, the last at %d bytes: %w",
				ErrRecordRefused, k.topic, k.partition, k.offset, ref.level, len(b.send[i].Value), cause)
		}
	}
	if len(p.refused) >= 100_000 {
		clear(p.refused) // bounded; the worst case is one more refusal
	}
	p.refused[k] = ref
	return nil
}
