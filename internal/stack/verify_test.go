package stack

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kpipe/internal/dlq"
)

// table is a tableState holding ids, one row each (repeat an id for more).
func table(version int64, ids ...string) tableState {
	st := tableState{version: version, rows: len(ids), counts: map[string]int{}}
	for _, id := range ids {
		st.counts[id]++
	}
	return st
}

var (
	nothingLeft = []topicLag{{Group: "e", Topic: "claimx.events", End: 3000}, {Group: "t", Topic: "itel.cabinet.task.tracking", End: 900}}
	// eventsLeft is the state: the table holds every tracked event,
	// but the enrichment worker has 1300 events to go.
	eventsLeft = []topicLag{{Group: "e", Topic: "claimx.events", Records: 1300, End: 3000}, {Group: "t", Topic: "itel.cabinet.task.tracking", End: 900}}
)

func TestReportTable(t *testing.T) {
	want := map[string]bool{"a": true, "b": true}
	tests := []struct {
		name  string
		check tableCheck
		ok    bool
		want  string
	}{
		{"exact", tableCheck{table: table(1, "a", "b"), lags: nothingLeft}, true, "OK: the table holds every tracked event exactly once"},
		{"missing", tableCheck{table: table(1, "a"), lags: nothingLeft}, false, "1 missing, 0 duplicated, 0 unexpected; missing: b"},
		{"missing on the error topics", tableCheck{table: table(1, "a"), lags: nothingLeft, errored: 1}, false, "missing: b (1 on the error topics"},
		{"duplicate and unexpected", tableCheck{table: table(1, "a", "b", "b", "x"), lags: nothingLeft}, false, "0 missing, 1 duplicated, 1 unexpected; duplicated: b"},
		// Rows of earlier runs (x, and a once) are not this run's.
		{"earlier runs", tableCheck{before: map[string]int{"x": 1, "a": 1}, table: table(2, "a", "b", "x"), lags: nothingLeft}, true, "OK"},
		{"written again", tableCheck{before: map[string]int{"a": 1, "b": 1}, table: table(2, "a", "b", "a", "b"), lags: nothingLeft}, false, "2 duplicated, 0 unexpected; duplicated: a, b"},
		// The false OK: every tracked event is there, but Kafka still
		// holds events to process.
		{"events left in Kafka", tableCheck{table: table(1, "a", "b"), lags: eventsLeft}, false, "left in Kafka: claimx.events 1300 (group e)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			tc.check.want = want
			err := reportTable(&out, "tbl", tc.check, time.Second)
			if (err == nil) != tc.ok {
				t.Fatalf("got error %v, want ok %v\n%s", err, tc.ok, out.String())
			}
			if err != nil && strings.Contains(out.String(), "OK") {
				t.Fatalf("OK printed with a failure:\n%s", out.String())
			}
			text := out.String()
			if err != nil {
				text = err.Error()
			}
			if !strings.Contains(text, tc.want) {
				t.Fatalf("got %q, want it to contain %q", text, tc.want)
			}
		})
	}
}

func TestReportTableDropped(t *testing.T) {
	c := tableCheck{want: map[string]bool{"a": true}, table: table(1, "a"), lags: nothingLeft}
	var out bytes.Buffer
	if err := reportTable(&out, "tbl", c, time.Second); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "dropped") {
		t.Fatalf("a dropped line without the metric:\n%s", out.String())
	}
	out.Reset()
	c.dropped, c.droppedKnown = 23, true
	if err := reportTable(&out, "tbl", c, time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "dropped    23 duplicates (kpipe_duplicates_dropped_total)") {
		t.Fatalf("no dropped line:\n%s", out.String())
	}
}

// TestDuplicatesDroppedMetric: the summary's count is the sum of the
// metric of that name, whoever registers it.
func TestDuplicatesDroppedMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, ok := metricSum(reg, DuplicatesDroppedMetric); ok {
		t.Fatal("found a metric in an empty registry")
	}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: DuplicatesDroppedMetric, Help: "h"}, []string{"worker", "table"})
	reg.MustRegister(c)
	c.WithLabelValues("w", "a").Add(20)
	c.WithLabelValues("w", "b").Add(3)
	if n, ok := metricSum(reg, DuplicatesDroppedMetric); !ok || n != 23 {
		t.Fatalf("got %v %v, want 23", n, ok)
	}
}

// TestSettled: a --events run decides only once two looks in a row found
// nothing left in Kafka, nothing produced and the table unchanged.
func TestSettled(t *testing.T) {
	moreProduced := []topicLag{nothingLeft[0], {Group: "t", Topic: "itel.cabinet.task.tracking", End: 902}}
	markersOnly := []topicLag{nothingLeft[0], {Group: "t", Topic: "itel.cabinet.task.tracking", End: 900}}
	tests := []struct {
		name      string
		prev, cur *checkState
		want      bool
	}{
		{"first look", nil, &checkState{lags: nothingLeft, table: table(3, "a")}, false},
		// Every tracked event is in the table, but events wait in Kafka.
		{"events left", &checkState{lags: eventsLeft, table: table(3, "a", "b")}, &checkState{lags: eventsLeft, table: table(3, "a", "b")}, false},
		{"events left before", &checkState{lags: eventsLeft, table: table(3, "a", "b")}, &checkState{lags: nothingLeft, table: table(3, "a", "b")}, false},
		{"events left now", &checkState{lags: nothingLeft, table: table(3, "a", "b")}, &checkState{lags: eventsLeft, table: table(3, "a", "b")}, false},
		{"table changed", &checkState{lags: nothingLeft, table: table(3, "a")}, &checkState{lags: nothingLeft, table: table(4, "a", "b")}, false},
		{"produced in between", &checkState{lags: nothingLeft, table: table(3, "a")}, &checkState{lags: moreProduced, table: table(3, "a")}, false},
		{"settled", &checkState{lags: nothingLeft, table: table(3, "a")}, &checkState{lags: markersOnly, table: table(3, "a")}, true},
		{"settled with no table", &checkState{lags: nothingLeft, table: table(-1)}, &checkState{lags: nothingLeft, table: table(-1)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := settled(tc.prev, tc.cur); got != tc.want {
				t.Fatalf("settled = %v, want %v", got, tc.want)
			}
		})
	}
	still := &checkState{lags: eventsLeft, table: table(3, "a")}
	if still.moved(&checkState{lags: eventsLeft, table: table(3, "a")}) {
		t.Error("nothing changed, but moved")
	}
	if !still.moved(&checkState{lags: nothingLeft, table: table(3, "a")}) {
		t.Error("the lag changed, but not moved")
	}
	err := waitTimeout(still, map[string]bool{"a": true, "b": true}, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "not moved for 1m0s (left in Kafka: claimx.events 1300 (group e)); the table holds 1 of the 2 tracked events") {
		t.Fatalf("timeout error: %v", err)
	}
}

func TestDeadLetterEventID(t *testing.T) {
	rec := func(value string, written bool) []byte {
		r := dlq.NewRecord("w", dlq.Source{Topic: "in", Value: []byte(value)}, dlq.Failure{Handler: "h", Class: dlq.ClassValidation, Err: errors.New("bad"), RowWritten: written}, time.Now())
		b, err := r.Marshal(dlq.DefaultMaxRecordBytes)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		value []byte
		want  string
	}{
		{rec(`{"event_id":"e1","x":1}`, false), "e1"},
		{rec(`{"event_id":"e1"}`, true), ""}, // the row was written all the same
		{rec(`not json`, false), ""},
		{[]byte("garbage"), ""},
	} {
		if got := deadLetterEventID(tc.value); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.value, got, tc.want)
		}
	}
}
