// Package dlq defines kpipe's dead-letter records — what a worker publishes
// to its error topic for a message it could not fully process — and replays
// them into the topics they came from.
//
// A record keeps the message's original bytes once, so nothing is lost:
// once the cause is fixed (a schema, a rule, the ClaimX API), Replay
// re-injects the messages whose rows were not written. A record never
// exceeds the error topic's size limit: Marshal cuts an original that would
// not fit and says so (original_truncated, with the whole original's length
// and SHA-256), and Replay refuses to re-inject a cut original.
//
//	rec := dlq.NewRecord("w",
//		dlq.Source{Topic: "in", Partition: 0, Offset: 7, Value: value},
//		dlq.Failure{Handler: "validation", Class: dlq.ClassValidation, Err: err}, time.Now())
//	cl.Produce(ctx, rec.KafkaRecord(errorTopic, dlq.DefaultMaxRecordBytes), nil)
//
// Every record's error_class is one of the Class constants, a closed set
// that both workers build their records from (NewRecord, KafkaRecord).
//
// # The wire form
//
// A record is one JSON object. The original is in exactly one of two
// fields: "original", the message itself, when it is valid UTF-8 JSON (byte
// for byte as consumed), or "original_base64", standard base64, for
// anything else ("original" is then null). "original_length" is the
// original's length in bytes on every record. A record whose original did
// not fit carries "original_truncated": true, "original_sha256" (hex SHA-256
// of the whole original) and in "original_base64" the longest prefix that
// fits. A huge error message is cut too ("error_message_truncated": true),
// and so, in the extreme, is a huge key ("key_truncated": true).
//
// SHA-256 is written only on cut records. On a record that holds its whole
// original it adds nothing a consumer cannot compute from the record, and it
// is not free: about 1.4 µs for a 1 KB original on these 2-core machines,
// some 9 % of encoding the record (BenchmarkMarshal), paid on every message
// when an API outage turns every message into an error record.
//
// # Delivery and deduplication
//
// Error records (and success records) are published at least once: a
// worker that crashes after publishing and before committing publishes them
// again after its restart. Every record names the message it is about by
// its source topic, partition and offset, and RecordKey (SourceKey for
// success records) turns these into a stable key: consumers deduplicate by
// it, keeping the record with the highest attempt.
package dlq

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// AttemptHeader is the Kafka header a replayed record carries: the attempt
// number its next failure, if any, is recorded with.
const AttemptHeader = "kpipe-attempt"

// DefaultMaxRecordBytes is the size Marshal keeps a record under when told
// no other: below Kafka's default message.max.bytes (1 048 588) with room
// for the key, headers and batch overhead.
//
// The producer must let such a record through: franz-go refuses, before
// sending, a record whose batch would exceed its ProducerBatchMaxBytes,
// 1 000 012 bytes by default, which a 1 000 000-byte value plus key and
// about 100 bytes of framing does. A producer of error records sets
// kgo.ProducerBatchMaxBytes to the error topic's max.message.bytes, or
// passes Marshal its batch limit less the key, the headers and a few
// hundred bytes. (The chaos suite found the tracking worker sizing records
// to the topic's limit with the default batch limit: MESSAGE_TOO_LARGE.)
const DefaultMaxRecordBytes = 1_000_000

// minRecordBytes is the smallest limit Marshal accepts: room for the fixed
// fields of a cut record.
const minRecordBytes = 512

// ErrLimitTooSmall is returned by Marshal when even a record with its
// original, message and key cut to nothing exceeds the limit.
var ErrLimitTooSmall = errors.New("dlq: size limit too small for a dead-letter record")

// Record is one dead-letter record, as JSON on an error topic.
//
// In memory, OriginalBase64 always holds the original bytes (or, on a cut
// record, the prefix kept) and Original the same bytes when they are JSON:
// both are filled by SetOriginal and by decoding, whichever field the wire
// form used. Encode with Marshal; json.Marshal gives the same bytes under
// DefaultMaxRecordBytes, except that it keeps a JSON original as
// "original" only when encoding/json would not reformat it.
type Record struct {
	// Worker is the worker that failed the message.
	Worker string `json:"worker"`
	// OriginalBase64 is the message value exactly as consumed (standard
	// base64 in JSON): on the wire only when it is not JSON, or cut.
	OriginalBase64 []byte `json:"original_base64,omitempty"`
	// Original is the value as JSON when it is valid UTF-8 JSON, else nil
	// (null on the wire, and "null" once decoded).
	Original json.RawMessage `json:"original"`
	// OriginalLength is the length of the whole original in bytes.
	OriginalLength int `json:"original_length"`
	// OriginalTruncated is true when the record keeps only a prefix of the
	// original (in OriginalBase64): it cannot be replayed.
	OriginalTruncated bool `json:"original_truncated,omitempty"`
	// OriginalSHA256 is the hex SHA-256 of the whole original, on cut
	// records: with OriginalLength it identifies the message.
	OriginalSHA256 string `json:"original_sha256,omitempty"`
	// Key is the message key.
	Key string `json:"key,omitempty"`
	// KeyTruncated is true when Key was cut to fit the limit.
	KeyTruncated bool `json:"key_truncated,omitempty"`
	// Topic, Partition and Offset say where the message was consumed.
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	// Handler is the step that failed; Class the kind of failure, one of
	// the Class constants; Rule the rule that failed, when one did.
	Handler string `json:"handler"`
	Class   string `json:"error_class"`
	Rule    string `json:"rule,omitempty"`
	Message string `json:"error_message"`
	// MessageTruncated is true when Message was cut to fit the limit.
	MessageTruncated bool `json:"error_message_truncated,omitempty"`
	// RowWritten is true when the message's row was still written (a
	// lookup failure with on_error log_and_continue): replaying it would
	// write the row twice.
	RowWritten bool `json:"row_written"`
	// Attempt counts how often the message has failed: 1 the first time,
	// one more after each replay.
	Attempt  int       `json:"attempt"`
	FailedAt time.Time `json:"failed_at"`
}

// SetOriginal records value as the original message: as JSON too when it
// is valid UTF-8 JSON that can be kept byte for byte.
func (r *Record) SetOriginal(value []byte) {
	r.OriginalBase64 = value
	r.OriginalLength = len(value)
	r.OriginalTruncated = false
	r.OriginalSHA256 = ""
	if keepsAsJSON(value, false) {
		r.Original = json.RawMessage(value)
	} else {
		r.Original = nil
	}
}

// OriginalBytes returns the original message bytes, and false when the
// record keeps only a prefix of them.
func (r *Record) OriginalBytes() ([]byte, bool) {
	b := r.OriginalBase64
	if b == nil && len(r.Original) > 0 && string(r.Original) != "null" {
		b = r.Original
	}
	return b, !r.OriginalTruncated && !r.KeyTruncated
}

// SourceKey is the stable key of the message at topic/partition/offset:
// "topic/partition/offset". Records about one source message share it, so
// consumers of at-least-once error and success records deduplicate by it.
func SourceKey(topic string, partition int32, offset int64) []byte {
	return AppendSourceKey(make([]byte, 0, len(topic)+24), topic, partition, offset)
}

// AppendSourceKey appends SourceKey(topic, partition, offset) to dst, for
// callers that build many keys in one buffer.
func AppendSourceKey(dst []byte, topic string, partition int32, offset int64) []byte {
	dst = append(dst, topic...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(partition), 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, offset, 10)
}

// RecordKey is the stable key of the record's source message,
// "topic/partition/offset" (see SourceKey): the same for every error record
// of one message, whichever attempt or restart published it.
func (r *Record) RecordKey() []byte {
	return SourceKey(r.Topic, r.Partition, r.Offset)
}

// MarshalJSON encodes r as Marshal(DefaultMaxRecordBytes) does, keeping a
// JSON original as "original" only when encoding/json's reformatting
// (compaction, HTML escaping) leaves it unchanged, so that json.Marshal of a
// record stays within the limit and keeps the original's bytes.
func (r Record) MarshalJSON() ([]byte, error) {
	return r.marshal(DefaultMaxRecordBytes, true)
}

// UnmarshalJSON decodes a record and fills OriginalBase64 from "original"
// when the wire form kept the original as JSON.
func (r *Record) UnmarshalJSON(b []byte) error {
	type plain Record
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*r = Record(p)
	if r.OriginalBase64 == nil && len(r.Original) > 0 && string(r.Original) != "null" {
		r.OriginalBase64 = []byte(r.Original)
	}
	return nil
}

// Marshal encodes the record in at most maxBytes bytes (maxBytes <= 0 means
// DefaultMaxRecordBytes). When the whole record does not fit, it cuts, in
// this order: an error message or key longer than a quarter of the limit
// (to that quarter), then the original, which the record then keeps as a
// base64 prefix with its length and SHA-256. It fails only with
// ErrLimitTooSmall, for limits under a few hundred bytes.
func (r *Record) Marshal(maxBytes int) ([]byte, error) {
	return r.marshal(maxBytes, false)
}

func (r *Record) marshal(maxBytes int, forEncodingJSON bool) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRecordBytes
	}
	orig, _ := r.OriginalBytes()
	length := len(orig)
	if r.OriginalTruncated && r.OriginalLength > length {
		// Re-encoding a record that was cut before: its prefix is all
		// there is, and its length and hash still describe the whole.
		length = r.OriginalLength
	}
	asJSON := !r.OriginalTruncated && keepsAsJSON(orig, forEncodingJSON)

	msg, key := r.Message, r.Key
	msgCut, keyCut := r.MessageTruncated, r.KeyTruncated
	for try := 0; try < 2; try++ {
		if try == 1 {
			// Second try: cut a huge message and key first.
			quarter := maxBytes / 4
			if escapedLen(msg) > quarter {
				msg, msgCut = cutEscaped(msg, quarter), true
			}
			if escapedLen(key) > quarter {
				key, keyCut = cutEscaped(key, quarter), true
			}
		}
		if r.OriginalTruncated {
			break
		}
		b := r.appendHead(make([]byte, 0, 256+len(msg)+len(key)+base64.StdEncoding.EncodedLen(len(orig))), key, keyCut, msg, msgCut)
		b = append(b, `,"original_length":`...)
		b = strconv.AppendInt(b, int64(length), 10)
		if asJSON {
			b = append(b, `,"original":`...)
			b = append(b, orig...)
		} else {
			b = append(b, `,"original":null,"original_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, orig)
			b = append(b, '"')
		}
		b = append(b, '}')
		if len(b) <= maxBytes {
			return b, nil
		}
	}

	// The original does not fit: keep the longest base64 prefix that does.
	sum := r.OriginalSHA256
	if !r.OriginalTruncated || sum == "" {
		h := sha256.Sum256(orig)
		sum = hex.EncodeToString(h[:])
	}
	quarter := maxBytes / 4
	if escapedLen(msg) > quarter {
		msg, msgCut = cutEscaped(msg, quarter), true
	}
	if escapedLen(key) > quarter {
		key, keyCut = cutEscaped(key, quarter), true
	}
	b := r.appendHead(make([]byte, 0, min(maxBytes, 512+len(msg)+len(key)+base64.StdEncoding.EncodedLen(len(orig)))), key, keyCut, msg, msgCut)
	b = append(b, `,"original_length":`...)
	b = strconv.AppendInt(b, int64(length), 10)
	b = append(b, `,"original_truncated":true,"original_sha256":"`...)
	b = append(b, sum...)
	b = append(b, `","original":null,"original_base64":"`...)
	room := maxBytes - len(b) - len(`"}`)
	if room < 0 {
		return nil, fmt.Errorf("%w: %d bytes, the record's fields alone take %d", ErrLimitTooSmall, maxBytes, len(b)+2)
	}
	n := min(room/4*3, len(orig))
	b = base64.StdEncoding.AppendEncode(b, orig[:n])
	b = append(b, `"}`...)
	return b, nil
}

// appendHead appends every field but the original's, as an unclosed
// object.
func (r *Record) appendHead(b []byte, key string, keyCut bool, msg string, msgCut bool) []byte {
	b = append(b, `{"worker":`...)
	b = appendString(b, r.Worker)
	if key != "" {
		b = append(b, `,"key":`...)
		b = appendString(b, key)
	}
	if keyCut {
		b = append(b, `,"key_truncated":true`...)
	}
	b = append(b, `,"topic":`...)
	b = appendString(b, r.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, r.Offset, 10)
	b = append(b, `,"handler":`...)
	b = appendString(b, r.Handler)
	b = append(b, `,"error_class":`...)
	b = appendString(b, r.Class)
	if r.Rule != "" {
		b = append(b, `,"rule":`...)
		b = appendString(b, r.Rule)
	}
	b = append(b, `,"error_message":`...)
	b = appendString(b, msg)
	if msgCut {
		b = append(b, `,"error_message_truncated":true`...)
	}
	b = append(b, `,"row_written":`...)
	b = strconv.AppendBool(b, r.RowWritten)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(r.Attempt), 10)
	b = append(b, `,"failed_at":"`...)
	t := r.FailedAt
	if y := t.Year(); y < 0 || y > 9999 {
		t = time.Time{} // RFC 3339 has four-digit years only
	}
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// maxJSONDepth is the deepest nesting an original may have to be kept as
// "original": deeper ones go as base64, so that a record stays readable by
// decoders with a depth limit (encoding/json's is 10 000, many others'
// 512 or 1 000) whatever the message. kpipe's workers refuse messages
// nested deeper than 64 by default, so this only concerns those.
const maxJSONDepth = 64

// keepsAsJSON says whether value can go on the wire as "original": valid
// UTF-8 JSON, nested at most maxJSONDepth deep, that decodes back to the
// same bytes (no surrounding space, not the literal null, which would read
// as "no JSON original"). For encoding/json it must also be what
// encoding/json's compaction and HTML escaping leave unchanged.
func keepsAsJSON(value []byte, forEncodingJSON bool) bool {
	if len(value) == 0 || string(value) == "null" || isSpace(value[0]) || isSpace(value[len(value)-1]) {
		return false
	}
	if !utf8.Valid(value) || !json.Valid(value) {
		return false
	}
	inString, escaped, depth := false, false, 0
	for i := 0; i < len(value); i++ {
		c := value[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			case forEncodingJSON && (c == '<' || c == '>' || c == '&'):
				return false
			case forEncodingJSON && c == 0xE2 && i+2 < len(value) && value[i+1] == 0x80 && (value[i+2] == 0xA8 || value[i+2] == 0xA9):
				return false // U+2028, U+2029
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxJSONDepth {
				return false
			}
		case c == '}' || c == ']':
			depth--
		case forEncodingJSON && isSpace(c):
			return false // compaction would remove it
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does
// (HTML characters, U+2028 and U+2029 too; invalid UTF-8 becomes U+FFFD),
// so that encoding/json leaves it unchanged.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// escapedSize is the length of the character at s[0] once escaped, and
// how many bytes of s it takes.
func escapedSize(s string) (out, in int) {
	c := s[0]
	if c < utf8.RuneSelf {
		switch {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			return 2, 1
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			return 6, 1
		}
		return 1, 1
	}
	r, size := utf8.DecodeRuneInString(s)
	switch {
	case r == utf8.RuneError && size == 1, r == '\u2028', r == '\u2029':
		return 6, size
	}
	return size, size
}

// escapedLen is the length of s as a JSON string, quotes included.
func escapedLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		o, in := escapedSize(s[i:])
		n += o
		i += in
	}
	return n
}

// cutEscaped returns the longest prefix of s, cut between characters,
// whose JSON string (quotes included) takes at most limit bytes.
func cutEscaped(s string, limit int) string {
	n := 2
	for i := 0; i < len(s); {
		o, in := escapedSize(s[i:])
		if n+o > limit {
			return s[:i]
		}
		n += o
		i += in
	}
	return s
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
