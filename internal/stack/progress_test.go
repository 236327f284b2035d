package stack

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"kpipe/internal/metrics"
)

func TestErrorBreakdown(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	if got := ErrorBreakdown(reg); got != "" {
		t.Fatalf("no errors: got %q", got)
	}
	m.EnrichEventsFailed.WithLabelValues("claimx_enrichment_worker", "not_found").Add(2)
	m.Errors.WithLabelValues("itel_cabinet_tracking_worker", "validation").Inc()
	m.Errors.WithLabelValues("itel_cabinet_tracking_worker", "schema_conflict").Add(3)
	if got, want := ErrorBreakdown(reg), "not_found=2 schema_conflict=3 validation=1"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestProgressLine: the progress line sums the workers' series; a line
// that did not change is printed again only as the final one.
func TestProgressLine(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.EnrichEventsConsumed.WithLabelValues("claimx_enrichment_worker").Add(10)
	m.WorkerDeltaWrites.WithLabelValues("a").Add(3)
	m.WorkerDeltaWrites.WithLabelValues("b").Add(4)
	m.WorkerMessagesFailed.WithLabelValues("a").Inc()
	var out bytes.Buffer
	p := newProgress(&out, &out, reg, func() int64 { return 12 })
	p.print(false)
	p.print(false)
	want := "generated 12  enriched 10  triggered 0  written 7  lag 0  errors 1\n"
	if got := out.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	p.print(true)
	if got := out.String(); got != want+want {
		t.Fatalf("after the final print: got %q", got)
	}
}
