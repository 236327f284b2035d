package stack

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// progress prints what the pipeline has done: one rewritten line on a
// terminal, a line every few seconds otherwise.
type progress struct {
	w         io.Writer
	g         prometheus.Gatherer
	generated func() int64
	tty       bool
	last      string
}

// newProgress prints to w; term is the stream w ends up on, checked for a
// terminal.
func newProgress(w, term io.Writer, g prometheus.Gatherer, generated func() int64) *progress {
	tty := false
	if f, ok := term.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, g: g, generated: generated, tty: tty}
}

func (p *progress) run(ctx context.Context) {
	every := 5 * time.Second
	if p.tty {
		every = 500 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.print(false)
		}
	}
}

func (p *progress) print(final bool) {
	s := sumMetrics(p.g)
	line := fmt.Sprintf("generated %d  enriched %.0f  triggered %.0f  written %.0f  lag %.0f  errors %.0f",
		p.generated(), s["kpipe_enrich_events_consumed_total"], s["itel_plugin_events_triggered_total"],
		s["itel_worker_delta_writes_total"], s["kpipe_consumer_lag"],
		s["kpipe_enrich_events_failed_total"]+s["itel_worker_messages_failed_total"])
	if line == p.last && !final {
		return
	}
	p.last = line
	if p.tty && !final {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		return
	}
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, line)
}

// ErrorBreakdown lists the failures g counted by kind: the enrichment
// worker's by reason, the workers' by class, sorted ("not_found=2
// validation=1"); "" when there were none.
func ErrorBreakdown(g prometheus.Gatherer) string {
	byKind := errorsByKind(g)
	parts := make([]string, 0, len(byKind))
	for kind, n := range byKind {
		parts = append(parts, fmt.Sprintf("%s=%d", kind, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// sumMetrics sums every series of each metric family, by name.
func sumMetrics(g prometheus.Gatherer) map[string]float64 {
	out := map[string]float64{}
	mfs, err := g.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				out[mf.GetName()] += m.Counter.GetValue()
			case m.Gauge != nil:
				out[mf.GetName()] += m.Gauge.GetValue()
			}
		}
	}
	return out
}

// metricSum sums every series of the metric family name in g, and reports
// whether g has such a family.
func metricSum(g prometheus.Gatherer, name string) (float64, bool) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
		return sum, true
	}
	return 0, false
}
