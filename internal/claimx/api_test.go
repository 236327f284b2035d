package claimx_test

import (
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"kpipe/internal/claimx"
	"kpipe/internal/config"
	"kpipe/internal/httpconn"
	"kpipe/internal/metrics"
	"kpipe/internal/sim"
)

// TestClientFetchesRows: each route of the typed API answers with the row
// the simulator serves, integers exact; an unknown id is a 404, not retried.
func TestClientFetchesRows(t *testing.T) {
	s := sim.New(sim.Options{Seed: 1, Projects: 50, Token: sim.DefaultToken})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	m := metrics.New(prometheus.NewRegistry())
	c, err := claimx.NewClient(&config.Connection{Name: "claimx_api", BaseURL: srv.URL, AuthType: "bearer", AuthToken: sim.DefaultToken, MaxRetries: 3},
		httpconn.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	id := s.Manifest().AssignmentIDs(sim.TemplateITelCabinet)[0]
	row, err := c.TaskAssignment(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := row["assignment_id"].(int64); !ok || got != id {
		t.Fatalf("assignment_id %T %v, want int64 %d", row["assignment_id"], row["assignment_id"], id)
	}
	if tid, _ := row.Int64("task_id"); tid != sim.TemplateITelCabinet {
		t.Fatalf("task_id %d, want %d", tid, sim.TemplateITelCabinet)
	}
	pid, _ := row.String("project_id")
	for name, call := range map[string]func() (claimx.Row, error){
		"project":  func() (claimx.Row, error) { return c.Project(t.Context(), pid) },
		"summary":  func() (claimx.Row, error) { return c.ProjectSummary(t.Context(), pid) },
		"template": func() (claimx.Row, error) { return c.TaskTemplate(t.Context(), sim.TemplateITelCabinet) },
	} {
		r, err := call()
		if err != nil || len(r) == 0 {
			t.Fatalf("%s: %v %v", name, r, err)
		}
	}
	if tpl, _ := c.TaskTemplate(t.Context(), sim.TemplateITelCabinet); tpl == nil {
		t.Fatal("template: no row")
	} else if got, _ := tpl.Int64("id"); got != sim.TemplateITelCabinet {
		t.Fatalf("template id %d, want %d", got, sim.TemplateITelCabinet)
	}
	r, err := c.TaskAssignment(t.Context(), 1)
	if !httpconn.IsNotFound(err) || r != nil {
		t.Fatalf("unknown id: %v %v, want 404", r, err)
	}
	if httpconn.IsRetryable(err) {
		t.Fatalf("404 retryable: %v", err)
	}
	if got := testutil.ToFloat64(m.HTTPRequests.WithLabelValues("claimx_api", "200")); got != 5 {
		t.Fatalf("requests{code=200} = %v, want 5", got)
	}
	if got := testutil.ToFloat64(m.HTTPRequests.WithLabelValues("claimx_api", "404")); got != 1 {
		t.Fatalf("requests{code=404} = %v, want 1 (a 404 is not retried)", got)
	}
}
