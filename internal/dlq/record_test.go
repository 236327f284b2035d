package dlq

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sampleRecord(original []byte) Record {
	r := Record{Worker: "itel_cabinet_tracking_worker", Key: "a-1", Topic: "itel.cabinet.task.tracking", Partition: 2, Offset: 41,
		Handler: "validation", Class: "validation", Rule: "task_id", Message: "task_id: want 32513", Attempt: 1,
		FailedAt: time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC)}
	r.SetOriginal(original)
	return r
}

// nested is depth levels of arrays around a value.
func nested(depth int) []byte {
	return []byte(strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth))
}

// jsonOf is a valid JSON object of about n bytes.
func jsonOf(n int) []byte {
	if n < 12 {
		return []byte(`{}`)
	}
	return []byte(`{"p":"` + strings.Repeat("x", n-8) + `"}`)
}

// wire decodes b as a plain map, to see the fields a consumer sees.
func wire(t testing.TB, b []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("record is not JSON: %v\n%.300s", err, b)
	}
	return m
}

func TestMarshal(t *testing.T) {
	const limit = 64 * 1024
	for _, tt := range []struct {
		name      string
		original  []byte
		asJSON    bool // kept in "original"
		truncated bool
	}{
		{"empty", []byte{}, false, false},
		{"json 1 KB", jsonOf(1024), true, false},
		{"json with spaces", []byte(`{"a": [1, 2], "b": "<&>"}`), true, false},
		{"not json", []byte("not json {"), false, false},
		{"literal null", []byte("null"), false, false},
		{"surrounding space", []byte(" {} "), false, false},
		{"invalid utf-8 in json", []byte("{\"a\":\"\xff\xfe\"}"), false, false},
		{"invalid utf-8", []byte{0xff, 0x00, 0xc3}, false, false},
		{"nested 64", nested(64), true, false},
		{"nested 65", nested(65), false, false},
		{"nested 10000", nested(10000), false, false},
		{"json at the edge", nil, true, false}, // filled below
		{"json one past the edge", nil, false, true},
		{"json 5 MB", jsonOf(5 << 20), false, true},
		{"binary 5 MB", bytes.Repeat([]byte{0xff, 0x01}, 5<<19), false, true},
		{"nested 5 MB", nested(5 << 19), false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.original
			if orig == nil {
				// The largest JSON original that fits whole, and one byte more.
				n := limit / 2
				for range 3 {
					probe := sampleRecord(jsonOf(n))
					b, _ := probe.Marshal(1 << 30)
					n += limit - len(b)
				}
				orig = jsonOf(n)
				if tt.truncated {
					orig = jsonOf(len(orig) + 1)
				}
			}
			r := sampleRecord(orig)
			b, err := r.Marshal(limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > limit {
				t.Fatalf("record is %d bytes, limit %d", len(b), limit)
			}
			if tt.name == "json at the edge" && len(b) != limit {
				t.Fatalf("edge record is %d bytes, want exactly %d", len(b), limit)
			}
			m := wire(t, b)
			for _, f := range []string{"topic", "partition", "offset", "original_length", "error_class"} {
				if _, ok := m[f]; !ok {
					t.Errorf("field %s missing", f)
				}
			}
			if got := string(m["original_length"]); got != itoa(len(orig)) {
				t.Errorf("original_length %s, want %d", got, len(orig))
			}
			_, hasB64 := m["original_base64"]
			if isJSON := string(m["original"]) != "null"; isJSON != tt.asJSON || isJSON == hasB64 {
				t.Fatalf("original as JSON %v, original_base64 present %v; want JSON %v, exactly one", isJSON, hasB64, tt.asJSON)
			}
			if tt.asJSON && !bytes.Equal(m["original"], orig) {
				t.Errorf("original is not kept byte for byte")
			}

			var back Record
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			got, whole := back.OriginalBytes()
			if whole == tt.truncated || back.OriginalTruncated != tt.truncated {
				t.Fatalf("whole %v truncated %v, want truncated %v", whole, back.OriginalTruncated, tt.truncated)
			}
			if back.Topic != r.Topic || back.Partition != r.Partition || back.Offset != r.Offset || back.Message != r.Message || !back.FailedAt.Equal(r.FailedAt) {
				t.Errorf("decoded %+v", back)
			}
			if !tt.truncated {
				if !bytes.Equal(got, orig) {
					t.Fatalf("original does not round-trip: %d bytes back of %d", len(got), len(orig))
				}
				if back.OriginalSHA256 != "" {
					t.Errorf("whole record carries a sha256")
				}
				return
			}
			sum := sha256.Sum256(orig)
			if back.OriginalSHA256 != hex.EncodeToString(sum[:]) || back.OriginalLength != len(orig) {
				t.Errorf("cut record says %d bytes sha256 %s", back.OriginalLength, back.OriginalSHA256)
			}
			if !bytes.HasPrefix(orig, got) || len(got) < limit/2 {
				t.Errorf("cut record keeps %d bytes, not a prefix or too short", len(got))
			}
			// Encoding a cut record again keeps its length and hash.
			again, err := back.Marshal(limit)
			if err != nil {
				t.Fatal(err)
			}
			var back2 Record
			if err := json.Unmarshal(again, &back2); err != nil || back2.OriginalSHA256 != back.OriginalSHA256 || back2.OriginalLength != len(orig) || !back2.OriginalTruncated {
				t.Errorf("re-encoded cut record %+v (%v)", back2, err)
			}
		})
	}
}

func TestMarshalCutsHugeFields(t *testing.T) {
	const limit = 10_000
	r := sampleRecord(jsonOf(100))
	r.Message = strings.Repeat("<bad> ", 100_000) // escapes to 6 bytes a character
	r.Key = strings.Repeat("k", 50_000)
	b, err := r.Marshal(limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > limit {
		t.Fatalf("%d bytes", len(b))
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.MessageTruncated || !strings.HasPrefix(r.Message, back.Message) || !back.KeyTruncated {
		t.Errorf("message cut %v key cut %v", back.MessageTruncated, back.KeyTruncated)
	}
	if _, whole := back.OriginalBytes(); whole {
		t.Errorf("a record with its key cut must not replay")
	}
	if !bytes.Equal(back.OriginalBase64, jsonOf(100)) || back.OriginalTruncated {
		t.Errorf("small original was cut")
	}
	if _, err := r.Marshal(100); !errors.Is(err, ErrLimitTooSmall) {
		t.Errorf("limit 100: %v, want ErrLimitTooSmall", err)
	}
}

// TestMarshalDefault checks that 0 means DefaultMaxRecordBytes and that
// json.Marshal keeps the bound and the original's bytes.
func TestMarshalDefault(t *testing.T) {
	for _, orig := range [][]byte{jsonOf(2 << 20), []byte(`{"url":"a?b=1&c=<2>"}`), []byte(`{"a": 1}`), []byte(`{"a":1}`)} {
		r := sampleRecord(orig)
		b, err := r.Marshal(0)
		if err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range [][]byte{b, j} {
			if len(enc) > DefaultMaxRecordBytes {
				t.Fatalf("%d bytes", len(enc))
			}
			var back Record
			if err := json.Unmarshal(enc, &back); err != nil {
				t.Fatal(err)
			}
			if got, whole := back.OriginalBytes(); whole && !bytes.Equal(got, orig) {
				t.Errorf("original %q came back as %q", orig, got)
			}
		}
	}
	// Pointer and value encode alike, and a struct holding records too.
	r := sampleRecord([]byte(`{"a":1}`))
	a, _ := json.Marshal(&r)
	b, _ := json.Marshal(struct{ R Record }{r})
	if !bytes.Contains(b, a) {
		t.Errorf("embedded record %s, want %s", b, a)
	}
}

func TestSetOriginalCompatible(t *testing.T) {
	// Callers that set the fields themselves (both, as older code does)
	// still get the original once.
	r := sampleRecord(nil)
	r.OriginalBase64 = []byte(`{"a":1}`)
	r.Original = json.RawMessage(`{"a":1}`)
	b, err := r.Marshal(0)
	if err != nil {
		t.Fatal(err)
	}
	if m := wire(t, b); string(m["original"]) != `{"a":1}` || m["original_base64"] != nil {
		t.Errorf("record %s", b)
	}
	r.SetOriginal([]byte("x"))
	if r.Original != nil || string(r.OriginalBase64) != "x" || r.OriginalLength != 1 {
		t.Errorf("SetOriginal(x): %+v", r)
	}
}

func TestRecordKey(t *testing.T) {
	r := Record{Topic: "claimx.events", Partition: 3, Offset: 1234567890123}
	if got := string(r.RecordKey()); got != "claimx.events/3/1234567890123" {
		t.Errorf("RecordKey %q", got)
	}
	if !bytes.Equal(r.RecordKey(), SourceKey("claimx.events", 3, 1234567890123)) {
		t.Errorf("RecordKey and SourceKey differ")
	}
}

func FuzzMarshal(f *testing.F) {
	f.Add([]byte(`{"event_id":"e1","task_id":32513}`), "msg", "key", 1024)
	f.Add([]byte(`{"event_id": "trunc`), "", "", 600)
	f.Add([]byte{0xff, 0xfe, '<', 0x00}, "\xff\u2028<>&\"\\\n", "k\x00", 512)
	f.Add(nested(300), strings.Repeat("é", 300), "", 700)
	f.Add([]byte(" null "), "", "", 0)
	f.Add([]byte{}, "", "", -5)
	f.Fuzz(func(t *testing.T, original []byte, msg, key string, limit int) {
		limit = limit % (1 << 16)
		r := sampleRecord(original)
		r.Message, r.Key = msg, key
		b, err := r.Marshal(limit)
		if limit <= 0 {
			limit = DefaultMaxRecordBytes
		}
		if err != nil {
			if !errors.Is(err, ErrLimitTooSmall) || limit >= minRecordBytes {
				t.Fatalf("Marshal(%d): %v", limit, err)
			}
			return
		}
		if len(b) > limit {
			t.Fatalf("%d bytes, limit %d", len(b), limit)
		}
		var back Record
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("does not decode: %v\n%s", err, b)
		}
		got, whole := back.OriginalBytes()
		if !bytes.HasPrefix(original, got) {
			t.Fatalf("kept original is not a prefix of the original")
		}
		if whole && !bytes.Equal(got, original) {
			t.Fatalf("whole original does not round-trip")
		}
		if whole != (!back.OriginalTruncated && !back.KeyTruncated) || back.OriginalLength != len(original) {
			t.Fatalf("whole %v, length %d of %d", whole, back.OriginalLength, len(original))
		}
		if back.Topic != r.Topic || back.Partition != r.Partition || back.Offset != r.Offset {
			t.Fatalf("source lost: %+v", back)
		}
		if j, err := json.Marshal(r); err != nil || len(j) > DefaultMaxRecordBytes {
			t.Fatalf("json.Marshal: %d bytes, %v", len(j), err)
		}
	})
}

// BenchmarkMarshal measures encoding error records of typical sizes, and
// what hashing every original (not only cut ones) would add.
func BenchmarkMarshal(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		orig := jsonOf(size)
		name := itoa(size>>10) + "KB"
		b.Run("record/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				r := sampleRecord(orig)
				if _, err := r.Marshal(0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("sha256/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				s := sha256.Sum256(orig)
				_ = hex.EncodeToString(s[:])
			}
		})
		b.Run("encoding_json/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				r := sampleRecord(orig)
				if _, err := json.Marshal(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
