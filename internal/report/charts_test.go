package report

import (
	"bytes"
	"encoding/csv"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestCharts(t *testing.T) {
	dir := newTable(t, lifecycles, replays)
	r := build(t, dir, Options{TaskID: templateID, AsOf: asOf, Timelines: true})

	wantFunnel := []FunnelStep{{"assigned", 7}, {"in_progress", 5}, {"reassigned", 1}, {"reopened", 1}, {"completed", 3}, {"cancelled", 1}}
	if got := Funnel(r); !reflect.DeepEqual(got, wantFunnel) {
		t.Errorf("funnel %v, want %v", got, wantFunnel)
	}
	// 1002 ran out of its 72h on Jan 9 and completed later; 1007 (first
	// seen Jan 8) on Jan 11 and 1005 on Jan 13 are still open.
	wantBreaches := []BreachDay{{jan(9, 0), 1, 0}, {jan(11, 0), 0, 1}, {jan(13, 0), 0, 1}}
	if got := SLABreaches(r); !reflect.DeepEqual(got, wantBreaches) {
		t.Errorf("breaches %v, want %v", got, wantBreaches)
	}
	ds := Distributions(r)
	if len(ds) != 5 || ds[0].Status != "assigned" {
		t.Fatalf("distributions %v", ds)
	}
	got := map[string]int64{}
	var n int64
	for _, b := range ds[0].Buckets {
		got[b.Label] = b.Assignments
		n += b.Assignments
	}
	// assigned: 2h (1003); 6h, 10h, 6h, 12h; 24h (1006); 288h (1007).
	if n != 7 || got["1–6h"] != 1 || got["6–24h"] != 4 || got["1–3d"] != 1 || got["7–30d"] != 1 {
		t.Errorf("assigned buckets %v", got)
	}

	a := r.Assignments[0]
	if a.AssignmentID != 1001 || len(a.History) != 4 || !a.History[0].Changed || a.History[2].Changed ||
		*a.History[0].Lasted != 6*h || a.History[3].Lasted != nil || a.History[3].Status != "completed" {
		t.Errorf("history of 1001: %s", js(a.History))
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, r, SectionTimeline); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(recs) != 1+int(r.Events) || strings.Join(recs[1], ",") != "1001,1,2026-01-05T09:00:00Z,assigned,true,21600" {
		t.Errorf("timeline csv (%v): %q", err, recs[:min(3, len(recs))])
	}
}

func TestAsOfRules(t *testing.T) {
	dir := newTable(t, lifecycles)
	newest := jan(21, 0) // a6-3
	at := func(tm time.Time) func() time.Time { return func() time.Time { return tm } }
	for _, tc := range []struct {
		name   string
		opts   Options
		want   time.Time
		source string
		note   string
	}{
		{"given", Options{AsOf: asOf, AsOfRule: AsOfAuto}, asOf, AsOfSourceGiven, ""},
		{"now by default", Options{Now: at(jan(25, 0))}, jan(25, 0), AsOfSourceNow, ""},
		{"auto, recent data", Options{AsOfRule: AsOfAuto, Now: at(jan(22, 0))}, jan(22, 0), AsOfSourceNow, ""},
		{"auto, old data", Options{AsOfRule: AsOfAuto, Now: at(jan(31, 0))}, newest, AsOfSourceLatest, "the newest event is 10d before now"},
		{"latest", Options{AsOfRule: AsOfLatest, Now: at(jan(22, 0))}, newest, AsOfSourceLatest, "--as-of latest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.TaskID = templateID
			r := build(t, dir, tc.opts)
			if !r.AsOf.Equal(tc.want) || r.AsOfSource != tc.source || !strings.Contains(r.AsOfNote, tc.note) {
				t.Errorf("as of %v (%s, %q), want %v (%s, %q)", r.AsOf, r.AsOfSource, r.AsOfNote, tc.want, tc.source, tc.note)
			}
		})
	}
	r := build(t, dir, Options{TaskID: 49999, AsOfRule: AsOfLatest, Now: at(jan(22, 0))})
	if !r.AsOf.Equal(jan(22, 0)) || r.AsOfSource != AsOfSourceNow || r.AsOfNote == "" {
		t.Errorf("no events: as of %v (%s, %q)", r.AsOf, r.AsOfSource, r.AsOfNote)
	}
	var b bytes.Buffer
	auto := build(t, dir, Options{TaskID: templateID, AsOfRule: AsOfAuto, Now: at(jan(31, 0))})
	if err := writeTable(&b, auto); err != nil || !strings.Contains(b.String(), "as of: newest event (the newest event is 10d before now") {
		t.Errorf("table output (%v):\n%s", err, b.String())
	}
}

func TestWriteHTML(t *testing.T) {
	r := build(t, newTable(t, lifecycles, replays), Options{TaskID: templateID, AsOf: asOf, Timelines: true})
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		`id="funnel-chart"`, `data-status="assigned" data-count="7"`, `id="breach-chart"`, `data-day="2026-01-09" data-late="1" data-open="0"`,
		`id="stuck-chart"`, `href="#a-1007"`, `<tr id="a-1001" data-assignment="1001">`, `"1005":{"project":"p-3"`,
		`<div class="card" data-key="assignments"><div class="k">assignments</div><div class="v">7</div>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if ext := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`).FindString(page); ext != "" {
		t.Errorf("the page loads an external asset: %s", ext)
	}
	if strings.Contains(page, "ZgotmplZ") {
		t.Error("html/template refused a value (ZgotmplZ) in the page")
	}
}
