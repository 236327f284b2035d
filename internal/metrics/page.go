package metrics

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The live page: GET / serves page.html (no external assets: its CSS,
// script and SVG charts are inline), which fetches GET /status.json every
// two seconds and draws it. status.json is built from the gatherer (the
// counters below, lag, errors by class, tables), the ReadyFunc and the
// StatusProviders added with AddStatus.

//go:embed page.html
var pageHTML []byte

// Throughput is one counter of the page: its total and its rate over the
// last samples.
type Throughput struct {
	// Key is the metric family summed; Name what the page calls it.
	Key   string  `json:"key"`
	Name  string  `json:"name"`
	Total float64 `json:"total"`
	// PerSecond is the rate over the last rateWindow of samples (0 with
	// fewer than two samples).
	PerSecond float64 `json:"per_second"`
	// History is PerSecond between consecutive samples, oldest first.
	History []float64 `json:"history"`
}

// pageCounters are the counters the page shows, in its order, with their
// names; a family without series (a process that does not do that) is left
// out. The _count of a histogram counts its observations.
var pageCounters = []struct{ key, name string }{
	{"kpipe_enrich_events_consumed_total", "events enriched"},
	{"itel_plugin_events_triggered_total", "events triggered"},
	{"itel_plugin_events_published_total", "records published"},
	{"itel_worker_messages_consumed_total", "messages consumed"},
	{"kpipe_delta_rows_written_total", "rows written"},
	{"kpipe_delta_commit_latency_seconds_count", "table commits"},
	{"kpipe_error_records_total", "error records"},
}

// StatusJSON is the body of GET /status.json.
type StatusJSON struct {
	Time time.Time `json:"time"`
	// Ready is "ready", "degraded" or "not ready"; Reason says why when it
	// is not "ready".
	Ready      string        `json:"ready"`
	Reason     string        `json:"reason,omitempty"`
	Workers    []WorkerReady `json:"workers"`
	Throughput []Throughput  `json:"throughput"`
	Lag        []LagJSON     `json:"lag"`
	Errors     []ErrorCount  `json:"errors"`
	Tables     []TableJSON   `json:"tables"`
	Sections   []Status      `json:"sections"`
	Interval   float64       `json:"sample_seconds"`
}

// WorkerReady is one worker's kpipe_worker_ready gauge.
type WorkerReady struct {
	Worker string `json:"worker"`
	Ready  bool   `json:"ready"`
}

// LagJSON is a consumer group's lag on one topic, summed over partitions.
type LagJSON struct {
	Group      string  `json:"group"`
	Topic      string  `json:"topic"`
	Lag        float64 `json:"lag"`
	Partitions int     `json:"partitions"`
}

// ErrorCount is a failure count of one class: kpipe_worker_errors_total
// by class, kpipe_enrich_events_failed_total by reason.
type ErrorCount struct {
	Worker string  `json:"worker"`
	Class  string  `json:"class"`
	Count  float64 `json:"count"`
}

// TableJSON is what the process knows of a Delta table.
type TableJSON struct {
	Table     string  `json:"table"`
	Version   float64 `json:"version"`
	StorageUp *bool   `json:"storage_up,omitempty"`
	Files     float64 `json:"files_written"`
}

// sampleEvery is the spacing of the page's throughput samples;
// maxSamples of them are kept (5 minutes).
const (
	sampleEvery = 2 * time.Second
	maxSamples  = 150
	rateWindow  = 5 // samples the rate is computed over
)

type sample struct {
	at     time.Time
	totals []float64 // per pageCounters
}

// pageState is the server's sampling of the counters and its providers.
type pageState struct {
	g     prometheus.Gatherer
	ready ReadyFunc

	mu        sync.Mutex
	providers []StatusProvider
	samples   []sample
}

// AddStatus adds providers to the live page, in the order shown.
func (s *Server) AddStatus(p ...StatusProvider) {
	s.page.mu.Lock()
	defer s.page.mu.Unlock()
	for _, x := range p {
		if x != nil {
			s.page.providers = append(s.page.providers, x)
		}
	}
}

// sampleNow records the counters if the last sample is older than
// sampleEvery (or forced), and returns the samples.
func (p *pageState) sampleNow(fams map[string]*dto.MetricFamily, now time.Time) []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.samples); n == 0 || now.Sub(p.samples[n-1].at) >= sampleEvery {
		tot := make([]float64, len(pageCounters))
		for i, c := range pageCounters {
			tot[i], _ = familySum(fams, c.key)
		}
		p.samples = append(p.samples, sample{at: now, totals: tot})
		if n := len(p.samples) - maxSamples; n > 0 {
			p.samples = append(p.samples[:0], p.samples[n:]...)
		}
	}
	return append([]sample(nil), p.samples...)
}

// gatherMap gathers g by family name.
func gatherMap(g prometheus.Gatherer) (map[string]*dto.MetricFamily, error) {
	mfs, err := g.Gather()
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out, err
}

// familySum sums the series of the family key (a histogram's _count when
// key ends so), and says whether it has any.
func familySum(fams map[string]*dto.MetricFamily, key string) (float64, bool) {
	mf, ok := fams[key]
	hist := false
	if !ok && len(key) > 6 && key[len(key)-6:] == "_count" {
		mf, ok = fams[key[:len(key)-6]]
		hist = true
	}
	if !ok || len(mf.GetMetric()) == 0 {
		return 0, false
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		switch {
		case hist && m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		}
	}
	return sum, true
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// build computes the page's status now.
func (p *pageState) build(ctx context.Context, now time.Time) StatusJSON {
	out := StatusJSON{Time: now.UTC(), Ready: "ready", Interval: sampleEvery.Seconds(),
		Workers: []WorkerReady{}, Throughput: []Throughput{}, Lag: []LagJSON{}, Errors: []ErrorCount{}, Tables: []TableJSON{}, Sections: []Status{}}
	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	err := p.ready(rctx)
	cancel()
	if err != nil {
		out.Ready, out.Reason = "not ready", err.Error()
		if errors.Is(err, ErrDegraded) {
			out.Ready = "degraded"
		}
	}
	fams, _ := gatherMap(p.g) // a failing collector leaves its family out
	samples := p.sampleNow(fams, now)
	for i, c := range pageCounters {
		total, ok := familySum(fams, c.key)
		if !ok {
			continue
		}
		tp := Throughput{Key: c.key, Name: c.name, Total: total, History: []float64{}}
		for j := 1; j < len(samples); j++ {
			dt := samples[j].at.Sub(samples[j-1].at).Seconds()
			tp.History = append(tp.History, max(0, samples[j].totals[i]-samples[j-1].totals[i])/dt)
		}
		if n := len(samples); n >= 2 {
			first := samples[max(0, n-1-rateWindow)]
			last := samples[n-1]
			if dt := last.at.Sub(first.at).Seconds(); dt > 0 {
				tp.PerSecond = max(0, last.totals[i]-first.totals[i]) / dt
			}
		}
		out.Throughput = append(out.Throughput, tp)
	}
	if mf, ok := fams["kpipe_consumer_lag"]; ok {
		idx := map[[2]string]int{}
		for _, m := range mf.GetMetric() {
			k := [2]string{label(m, "group"), label(m, "topic")}
			i, ok := idx[k]
			if !ok {
				i = len(out.Lag)
				idx[k] = i
				out.Lag = append(out.Lag, LagJSON{Group: k[0], Topic: k[1]})
			}
			out.Lag[i].Lag += m.GetGauge().GetValue()
			out.Lag[i].Partitions++
		}
		sort.Slice(out.Lag, func(i, j int) bool {
			return out.Lag[i].Group+"\x00"+out.Lag[i].Topic < out.Lag[j].Group+"\x00"+out.Lag[j].Topic
		})
	}
	for fam, lbl := range map[string]string{"kpipe_worker_errors_total": "class", "kpipe_enrich_events_failed_total": "reason"} {
		for _, m := range fams[fam].GetMetric() {
			if v := m.GetCounter().GetValue(); v > 0 {
				out.Errors = append(out.Errors, ErrorCount{Worker: label(m, "worker"), Class: label(m, lbl), Count: v})
			}
		}
	}
	sort.Slice(out.Errors, func(i, j int) bool {
		a, b := out.Errors[i], out.Errors[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Worker+"\x00"+a.Class < b.Worker+"\x00"+b.Class
	})
	for _, m := range fams["kpipe_worker_ready"].GetMetric() {
		out.Workers = append(out.Workers, WorkerReady{Worker: label(m, "worker"), Ready: m.GetGauge().GetValue() == 1})
	}
	sort.Slice(out.Workers, func(i, j int) bool { return out.Workers[i].Worker < out.Workers[j].Worker })
	tables := map[string]*TableJSON{}
	table := func(name string) *TableJSON {
		if t, ok := tables[name]; ok {
			return t
		}
		t := &TableJSON{Table: name, Version: -1}
		tables[name] = t
		return t
	}
	for _, m := range fams["kpipe_delta_table_version"].GetMetric() {
		table(label(m, "table")).Version = m.GetGauge().GetValue()
	}
	for _, m := range fams["kpipe_delta_storage_up"].GetMetric() {
		up := m.GetGauge().GetValue() == 1
		table(label(m, "table")).StorageUp = &up
	}
	for _, m := range fams["kpipe_delta_files_written_total"].GetMetric() {
		table(label(m, "table")).Files = m.GetCounter().GetValue()
	}
	for _, t := range tables {
		out.Tables = append(out.Tables, *t)
	}
	sort.Slice(out.Tables, func(i, j int) bool { return out.Tables[i].Table < out.Tables[j].Table })
	p.mu.Lock()
	providers := append([]StatusProvider(nil), p.providers...)
	p.mu.Unlock()
	for _, pr := range providers {
		st := pr.Status()
		if st.Title == "" && len(st.Facts) == 0 && len(st.Commits) == 0 && len(st.Rows) == 0 {
			continue
		}
		out.Sections = append(out.Sections, st)
	}
	return out
}

// sampleLoop samples the counters every sampleEvery until ctx ends, so
// that the page shows rates as soon as it is opened.
func (p *pageState) sampleLoop(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if fams, err := gatherMap(p.g); err == nil || len(fams) > 0 {
				p.sampleNow(fams, now)
			}
		}
	}
}

func (p *pageState) servePage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
	_, _ = w.Write(pageHTML)
}

func (p *pageState) serveStatus(w http.ResponseWriter, r *http.Request) {
	body, err := json.Marshal(p.build(r.Context(), time.Now()))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}
