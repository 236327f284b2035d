package stack

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"kpipe/internal/metrics"
)

// TestLivePageStatus: the stack's metrics address serves the live page's
// status with the stack's facts and both workers' last commits and newest
// rows, as the metrics count them.
func TestLivePageStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	out := &syncBuffer{}
	o := options(t, newCluster(t), out)
	o.Events = 300
	s := runStack(t, o, out)
	// The metrics endpoint answers until Close.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.Info().Metrics.String()+"/status.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var st metrics.StatusJSON
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	written, _ := metricSum(s.reg, "kpipe_delta_rows_written_total")
	var rows float64
	for _, tp := range st.Throughput {
		if tp.Key == "kpipe_delta_rows_written_total" {
			rows = tp.Total
		}
	}
	if written == 0 || rows != written {
		t.Errorf("rows written: status %v, metrics %v", rows, written)
	}
	titles := map[string]metrics.Status{}
	for _, sec := range st.Sections {
		titles[strings.Fields(sec.Title)[0]] = sec
	}
	if up := titles["kpipe"]; len(up.Facts) == 0 || up.Facts[0].Name != "events generated" || up.Facts[0].Value != "300" {
		t.Errorf("stack facts %+v", up.Facts)
	}
	tr := titles["tracking"]
	var committed int
	for _, c := range tr.Commits {
		committed += c.Rows
		if c.Target != "itel_cabinet_task_tracking" || c.Version < 1 {
			t.Errorf("tracking commit %+v", c)
		}
	}
	if len(tr.Commits) == 0 || len(tr.Rows) == 0 || tr.Columns[0] != "task_status" || (len(tr.Commits) < 10 && float64(committed) != written) {
		t.Errorf("tracking section: %d commits of %d rows (metrics: %v), %d rows, columns %q", len(tr.Commits), committed, written, len(tr.Rows), tr.Columns)
	}
	if en := titles["enrichment"]; len(en.Commits) == 0 || len(en.Rows) == 0 || en.Columns[0] != "topic" {
		t.Errorf("enrichment section: %d transactions, %d records, columns %q", len(en.Commits), len(en.Rows), en.Columns)
	}
}
