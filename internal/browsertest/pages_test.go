package browsertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"kpipe/internal/config"
	"kpipe/internal/pipeline"
	"kpipe/internal/plugin"
	"kpipe/internal/query"
	"kpipe/internal/report"
	"kpipe/internal/stack"
)

const repoConfig = "../../config"

// scrape sums every series of each metric family of the text exposition at
// url (a histogram's _count as its own name).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 && i < len(name) {
			name = line[:i]
			_, rest, _ = strings.Cut(line[strings.LastIndexByte(line, '}'):], " ")
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// liveDOM is what the live page shows.
type liveDOM struct {
	Loaded   int               `json:"loaded"`
	Ready    string            `json:"ready"`
	Reason   string            `json:"reason"`
	Totals   map[string]string `json:"totals"`
	LagRows  [][]string        `json:"lag"`
	Tables   [][]string        `json:"tables"`
	Sections []struct {
		Title   string     `json:"title"`
		Commits [][]string `json:"commits"`
		Rows    int        `json:"rows"`
		Columns []string   `json:"columns"`
	} `json:"sections"`
}

const readLiveDOM = `(() => {
  const cells = (sel) => [...document.querySelectorAll(sel)].map(tr => [...tr.children].map(td => td.textContent));
  const totals = {};
  document.querySelectorAll('#throughput .card').forEach(c => { totals[c.dataset.key] = c.querySelector('.total').textContent; });
  return {
    loaded: Number(document.body.dataset.loaded || 0),
    ready: document.getElementById('ready').textContent,
    reason: document.getElementById('reason').textContent,
    totals,
    lag: cells('#lag-table tbody tr'),
    tables: cells('#tables-table tbody tr'),
    sections: [...document.querySelectorAll('#sections section')].map(s => ({
      title: s.querySelector('h2').textContent,
      commits: cells('#sections section[data-section="' + s.dataset.section + '"] table.commits tbody tr'),
      rows: s.querySelectorAll('table.rows tbody tr').length,
      columns: [...s.querySelectorAll('table.rows thead th')].map(th => th.textContent),
    })),
  };
})()`

// number reads a number the page formatted ("1,234").
func number(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 64)
	if err != nil {
		t.Fatalf("the page shows %q, not a number", s)
	}
	return v
}

// TestPagesInBrowser runs the whole local stack (what kpipe up runs, with
// its embedded broker and the simulator generating events), opens the live
// page of its metrics address in Chromium while it runs, then stops it and
// opens the HTML report of the table it wrote.
func TestPagesInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline and a browser")
	}
	b := newBrowser(t)
	s, err := stack.New(t.Context(), stack.Options{
		LoadConfig: func(getenv func(string) (string, bool)) (*config.Config, error) {
			return config.Load(repoConfig, config.WithEnv(getenv), config.WithHandlers(pipeline.DefaultRegistry()), config.WithPlugins(plugin.DefaultRegistry()))
		},
		ConfigDir:   repoConfig,
		DataDir:     t.TempDir(),
		Worker:      "itel_cabinet_tracking_worker",
		IDPrefix:    "browser-test-",
		Seed:        1,
		Rate:        300,
		MetricsAddr: "127.0.0.1:0",
		Out:         io.Discard,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.WithoutCancel(t.Context()))
	info := s.Info()
	if info.Metrics == nil {
		t.Fatal("the stack serves no metrics endpoint")
	}
	base := "http://" + info.Metrics.String()
	runCtx, stop := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(runCtx) }()
	stopped := false
	stopStack := func() {
		if stopped {
			return
		}
		stopped = true
		stop()
		if err := <-ran; err != nil {
			t.Errorf("stack Run: %v", err)
		}
	}
	defer stopStack()

	// Wait until rows reached the table, through at least two commits.
	deadline := time.Now().Add(3 * time.Minute)
	for m := scrape(t, base+"/metrics"); m["kpipe_delta_commit_latency_seconds_count"] < 2; m = scrape(t, base+"/metrics") {
		if time.Now().After(deadline) {
			t.Fatalf("no two table commits within 3 minutes: %v", m)
		}
		select {
		case err := <-ran:
			t.Fatalf("the stack stopped: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}

	t.Run("live page", func(t *testing.T) {
		before := scrape(t, base+"/metrics")
		if _, err := chromedp.Run(b.ctx, chromedp.Navigate(base+"/")); err != nil {
			t.Fatal(err)
		}
		// Two refreshes: the second has rates between samples.
		waitFor(t, b, "two refreshes", `Number(document.body.dataset.loaded || 0) >= 2`)
		dom := eval[liveDOM](t, b, readLiveDOM)
		after := scrape(t, base+"/metrics")
		// Counters only grow: what the page shows lies between the scrapes
		// before and after it.
		for _, key := range []string{"kpipe_enrich_events_consumed_total", "itel_plugin_events_triggered_total",
			"kpipe_delta_rows_written_total", "kpipe_delta_commit_latency_seconds_count", "itel_worker_messages_consumed_total"} {
			text, ok := dom.Totals[key]
			if !ok {
				t.Errorf("the page shows no %s (shows %v)", key, dom.Totals)
				continue
			}
			if v := number(t, text); v < before[key] || v > after[key] || v == 0 {
				t.Errorf("%s: the page shows %v, the metrics were %v before and %v after", key, v, before[key], after[key])
			}
		}
		switch dom.Ready {
		case "ready":
		case "degraded", "not ready":
			if dom.Reason == "" {
				t.Errorf("%s without a reason", dom.Ready)
			}
		default:
			t.Errorf("readiness %q", dom.Ready)
		}
		groups := map[string]bool{}
		for _, r := range dom.LagRows {
			groups[r[0]] = true
		}
		if !groups[info.EnrichGroup] || !groups[info.TrackGroup] {
			t.Errorf("lag rows %q lack the groups %s and %s", dom.LagRows, info.EnrichGroup, info.TrackGroup)
		}
		if len(dom.Tables) != 1 || dom.Tables[0][0] != "itel_cabinet_task_tracking" || number(t, dom.Tables[0][1]) < 1 ||
			number(t, dom.Tables[0][1]) > after["kpipe_delta_table_version"] {
			t.Errorf("tables %q, version %v", dom.Tables, after["kpipe_delta_table_version"])
		}
		var tracking, enrichment bool
		for _, sec := range dom.Sections {
			switch {
			case strings.HasPrefix(sec.Title, "tracking worker itel_cabinet_tracking_worker"):
				tracking = true
				if len(sec.Commits) == 0 || sec.Rows == 0 || len(sec.Columns) == 0 || sec.Columns[0] != "task_status" {
					t.Errorf("tracking section: %d commits, %d rows, columns %q", len(sec.Commits), sec.Rows, sec.Columns)
				} else if v := number(t, sec.Commits[0][2]); v > after["kpipe_delta_table_version"] || sec.Commits[0][1] != "itel_cabinet_task_tracking" {
					t.Errorf("newest commit %q, table version %v", sec.Commits[0], after["kpipe_delta_table_version"])
				}
			case strings.HasPrefix(sec.Title, "enrichment worker"):
				enrichment = true
				if len(sec.Commits) == 0 || sec.Rows == 0 {
					t.Errorf("enrichment section: %d transactions, %d records", len(sec.Commits), sec.Rows)
				}
			}
		}
		if !tracking || !enrichment {
			t.Errorf("sections %+v: want the tracking and the enrichment worker's", dom.Sections)
		}
		screenshot(t, b, "live-page")
		b.checkConsole(t)
	})

	stopStack()

	t.Run("report", func(t *testing.T) {
		db, err := query.Open(t.Context(), info.Table)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		r, err := report.Build(t.Context(), db, report.Options{TaskID: 32513, AsOfRule: report.AsOfAuto, Timelines: true, SLA: 24 * time.Hour, StuckAfter: 12 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if r.Summary.Assignments == 0 {
			t.Fatal("the stack's table holds no assignment")
		}
		page := filepath.Join(t.TempDir(), "report.html")
		f, err := os.Create(page)
		if err != nil {
			t.Fatal(err)
		}
		if err := report.WriteHTML(f, r); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(b.ctx, chromedp.Navigate("file://"+page)); err != nil {
			t.Fatal(err)
		}
		cards := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#summary .card')].map(c => [c.dataset.key, c.querySelector('.v').textContent]))`)
		sm := r.Summary
		for k, want := range map[string]int64{"assignments": sm.Assignments, "open": sm.Open, "completed": sm.Completed,
			"cancelled": sm.Cancelled, "open_past_sla": sm.OpenPastSLA, "stuck": sm.Stuck} {
			if got := cards[k]; got != strconv.FormatInt(want, 10) {
				t.Errorf("summary %s: the page shows %q, the report has %d", k, got, want)
			}
		}
		funnel := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#funnel-chart .funnel-step')].map(g => [g.dataset.status, g.dataset.count]))`)
		for _, st := range report.Funnel(r) {
			if funnel[st.Status] != strconv.FormatInt(st.Assignments, 10) {
				t.Errorf("funnel %s: the page shows %q, the report has %d", st.Status, funnel[st.Status], st.Assignments)
			}
		}
		if n := eval[int](t, b, `document.querySelectorAll('#assignments-table tbody tr').length`); n != len(r.Assignments) {
			t.Errorf("the page lists %d assignments, the report %d", n, len(r.Assignments))
		}
		if n := eval[int](t, b, `document.querySelectorAll('#time-in-status figure.dist').length`); n != len(report.Distributions(r)) {
			t.Errorf("the page draws %d distributions, the report has %d", n, len(report.Distributions(r)))
		}
		if n := eval[int](t, b, `document.querySelectorAll('#breach-chart .breach-day').length`); n != len(report.SLABreaches(r)) {
			t.Errorf("the page draws %d breach days, the report has %d", n, len(report.SLABreaches(r)))
		}
		if n := eval[int](t, b, `document.querySelectorAll('#stuck-chart .stuck-bar').length`); n != len(r.Stuck) {
			t.Errorf("the page draws %d stuck bars, the report lists %d", n, len(r.Stuck))
		}
		if !strings.Contains(eval[string](t, b, `document.getElementById('as-of').textContent`), r.AsOf.Format(time.RFC3339Nano)) {
			t.Errorf("the page does not say the as-of %v", r.AsOf)
		}
		screenshot(t, b, "report")

		// The timeline of the assignment with the most events, by a click
		// on its id.
		a := r.Assignments[0]
		for _, x := range r.Assignments {
			if len(x.History) > len(a.History) {
				a = x
			}
		}
		id := strconv.FormatInt(a.AssignmentID, 10)
		if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](`document.querySelector('#assignments-table a[href="#a-`+id+`"]').scrollIntoView({block: "center"})`)); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(b.ctx, chromedp.Click(`#assignments-table a[href="#a-`+id+`"]`)); err != nil {
			t.Fatalf("clicking assignment %s: %v", id, err)
		}
		sel := `[data-timeline="` + id + `"]`
		waitFor(t, b, "the timeline of "+id, `document.querySelector('`+sel+` svg') !== null`)
		if n := eval[int](t, b, `document.querySelectorAll('`+sel+` .tick-mark').length`); n != len(a.History) {
			t.Errorf("the timeline of %s marks %d events, the report has %d", id, n, len(a.History))
		}
		if n := eval[int](t, b, `document.querySelectorAll('`+sel+` .band').length`); n != len(a.History) {
			t.Errorf("the timeline of %s has %d bands, want %d", id, n, len(a.History))
		}
		screenshot(t, b, "report-timeline")

		// Opened at an anchor, the page shows that timeline at once.
		other := r.Assignments[len(r.Assignments)-1]
		oid := strconv.FormatInt(other.AssignmentID, 10)
		if err := chromedp.Do(b.ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(fmt.Sprintf("file://%s#a-%s", page, oid))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, b, "the timeline at the anchor", `document.querySelector('[data-timeline="`+oid+`"] svg') !== null`)
		b.checkConsole(t)
	})
}
