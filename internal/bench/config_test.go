package bench

import (
	"path/filepath"
	"testing"

	"kpipe/internal/config"
	"kpipe/internal/pipeline"
)

// TestWriteConfig rewrites the shipped configuration as a run does and
// loads it as kpipe worker would: the worker's topics and group are the
// run's, the many-keys lookup asks for each event's assignment, --set
// fields (present in the file or not) hold their values, and everything
// else is as shipped.
func TestWriteConfig(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "config")
	tp := topics{input: "in.t", success: "ok.t", errors: "err.t", group: "g.t"}
	set := map[string]string{"batch_size": "500", "polls_in_flight": "3", "enrichment_handlers[3].config.flush_rows": "2500"}
	if err := writeConfig(filepath.Join("..", "..", "config"), dst, DefaultWorker, tp, true, set); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CLAIMX_API_BASE_URL": "http://127.0.0.1:1", "CLAIMX_API_TOKEN": "x"}
	cfg, err := config.Load(dst, config.WithEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }), config.WithHandlers(pipeline.DefaultRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	w, err := cfg.Worker(DefaultWorker)
	if err != nil {
		t.Fatal(err)
	}
	if w.InputTopic != tp.input || w.ConsumerGroup != tp.group || w.SuccessTopic != tp.success || w.ErrorTopic != tp.errors {
		t.Fatalf("topics %s %s %s %s, want the run's", w.InputTopic, w.ConsumerGroup, w.SuccessTopic, w.ErrorTopic)
	}
	if w.BatchSize != 500 || w.PollsInFlight != 3 {
		t.Fatalf("batch_size %d, polls_in_flight %d, want 500 and 3", w.BatchSize, w.PollsInFlight)
	}
	if len(w.EnrichmentHandlers) != 4 {
		t.Fatalf("%d handlers, want the shipped 4", len(w.EnrichmentHandlers))
	}
	var lk pipeline.LookupConfig
	if err := w.EnrichmentHandlers[2].Decode(&lk); err != nil {
		t.Fatal(err)
	}
	if lk.Endpoint != "/customTasks/assignment/{task_id}" || lk.PathParams["task_id"] != "assignment_id" || lk.CacheTTL != 60 {
		t.Fatalf("lookup %+v, want the assignment route by assignment_id, cache_ttl 60", lk)
	}
	if rows, _, ok := w.EnrichmentHandlers[3].Field("flush_rows"); !ok || rows != "2500" {
		t.Fatalf("delta_writer flush_rows %q (%v), want 2500", rows, ok)
	}
}
