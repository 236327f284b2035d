package dlq

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewRecordKafkaRecord(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	tests := []struct {
		name     string
		src      Source
		f        Failure
		limit    int
		wantCut  bool
		wantOrig bool
	}{
		{name: "whole", src: Source{Topic: "in", Partition: 2, Offset: 7, Key: []byte("k"), Value: []byte(`{"a":1}`)},
			f: Failure{Handler: "validation", Class: ClassValidation, Rule: "a.equals", Err: errors.New("a: want 2")}, limit: DefaultMaxRecordBytes, wantOrig: true},
		{name: "cut", src: Source{Topic: "in", Offset: 8, Value: []byte(strings.Repeat("x", 5000)), Attempt: 3},
			f: Failure{Handler: "enrich", Class: ClassTooLarge, Err: errors.New("big")}, limit: 2000, wantCut: true},
		{name: "limit too small", src: Source{Topic: "in", Offset: 9, Value: []byte(`{"a":1}`)},
			f: Failure{Handler: "enrich", Class: ClassMalformed, Err: errors.New(strings.Repeat("m", 1000))}, limit: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRecord("w", tt.src, tt.f, now)
			kr := r.KafkaRecord("errs", tt.limit)
			if kr.Topic != "errs" || string(kr.Key) != string(SourceKey(tt.src.Topic, tt.src.Partition, tt.src.Offset)) {
				t.Fatalf("got topic %q key %q", kr.Topic, kr.Key)
			}
			if tt.limit >= minRecordBytes && len(kr.Value) > tt.limit {
				t.Fatalf("got %d bytes, want at most %d", len(kr.Value), tt.limit)
			}
			var got Record
			if err := json.Unmarshal(kr.Value, &got); err != nil {
				t.Fatal(err)
			}
			if got.Worker != "w" || got.Class != tt.f.Class || got.Handler != tt.f.Handler || got.Rule != tt.f.Rule ||
				got.Attempt != max(tt.src.Attempt, 1) || !got.FailedAt.Equal(now) || got.FailedAt.Location() != time.UTC {
				t.Fatalf("got %+v", got)
			}
			if tt.wantOrig && string(got.Original) != string(tt.src.Value) {
				t.Fatalf("got original %s, want %s", got.Original, tt.src.Value)
			}
			if got.OriginalTruncated != tt.wantCut {
				t.Fatalf("got truncated %v, want %v", got.OriginalTruncated, tt.wantCut)
			}
			if tt.limit < minRecordBytes && (len(got.Message) != 200 || got.OriginalLength != 0) {
				t.Fatalf("fallback kept %d message bytes and an original of %d", len(got.Message), got.OriginalLength)
			}
		})
	}
}

func TestSourceKeyLen(t *testing.T) {
	for _, c := range []struct {
		topic string
		p     int32
		o     int64
	}{{"t", 0, 0}, {"claimx.events", 11, 1234567}, {"", -1, -9223372036854775808}, {"x", 2147483647, 9223372036854775807}} {
		if got, want := SourceKeyLen(c.topic, c.p, c.o), len(SourceKey(c.topic, c.p, c.o)); got != want {
			t.Fatalf("SourceKeyLen(%q, %d, %d) = %d, want %d", c.topic, c.p, c.o, got, want)
		}
	}
}

func TestClasses(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Classes() {
		if seen[c] || !IsClass(c) {
			t.Fatalf("class %q listed twice or not recognised", c)
		}
		seen[c] = true
	}
	if IsClass("lookup_error") || IsClass("") {
		t.Fatal("IsClass accepts a name outside the set")
	}
}
