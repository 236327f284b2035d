package cli

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"

	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/delta"
	"kpipe/internal/sim"
)

func TestWorkerCommandUnknownWorker(t *testing.T) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	vars := map[string]string{"CLAIMX_API_BASE_URL": "http://127.0.0.1:1", "CLAIMX_API_TOKEN": "x", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
	env := &Env{Stdout: out, Stderr: errOut, Getenv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	code := run(t.Context(), env, []string{"--config-dir", "../../config", "worker", "no_such_worker"})
	if code != ExitUsage || !strings.Contains(errOut.String(), "itel_cabinet_tracking_worker") {
		t.Fatalf("exit %d, stderr %q: want %d naming the known workers", code, errOut, ExitUsage)
	}
}

// kpipe worker runs the tracking worker against a broker and the simulator;
// the first signal (ctx cancelled) flushes, commits and exits 0.
func TestWorkerCommandRunsAndStopsCleanly(t *testing.T) {
	const topic = "itel.cabinet.task.tracking"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic), kfake.SeedTopics(1, topic+".success", topic+".errors"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := sim.New(sim.Options{Seed: 5, Projects: 10})
	srv := httptest.NewServer(s)
	defer srv.Close()
	vars := map[string]string{
		"CLAIMX_API_BASE_URL":     srv.URL,
		"CLAIMX_API_TOKEN":        sim.DefaultToken,
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(c.ListenAddrs(), ","),
	}
	out, errOut := &syncBuffer{}, &syncBuffer{}
	env := &Env{Stdout: out, Stderr: errOut, Getenv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	data := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, env, []string{"--config-dir", "../../config", "--log-level", "info", "worker", "itel_cabinet_tracking_worker", "--data", data, "--metrics-addr", "127.0.0.1:0"})
	}()
	m, err := errOut.waitFor(t.Context(), regexp.MustCompile(`msg=metrics_serving .*addr=(\S+)`), nil)
	if err != nil {
		t.Fatalf("no metrics address logged: %v\n%s", err, errOut)
	}
	metricsAddr := m[1]

	entries := s.Manifest().EventsForTemplate(32513)[:5]
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for _, e := range entries {
		v, _ := json.Marshal(map[string]any{
			"event_id": e.EventID, "event_type": e.EventType, "project_id": e.ProjectID, "task_id": e.TaskID,
			"assignment_id": e.AssignmentID, "task_name": "iTel Cabinet Repair Form", "task_status": e.Status,
			"timestamp": e.At.Format(time.RFC3339Nano), "task": map[string]any{"status": e.Status}, "project": map[string]any{"project_id": e.ProjectID},
		})
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Stop as soon as the delta_writer holds all of them, before the 2 s
	// age flush: the rows must come from the graceful stop's flush. (Once
	// consumed is not enough: a stop while the lookups run drops the poll,
	// uncommitted, for the next run.)
	buffered := regexp.MustCompile(`(?m)^kpipe_handler_messages_total\{handler="delta_writer",result="out",worker="itel_cabinet_tracking_worker"\} (\d+)$`)
	waitUntil(t, func() bool {
		m := buffered.FindStringSubmatch(scrape(metricsAddr))
		return m != nil && m[1] == strconv.Itoa(len(entries))
	})
	// The default --gc-headroom sets a memory limit after a collection
	// (no GOGC or GOMEMLIMIT in this environment), which /metrics shows.
	limit := regexp.MustCompile(`(?m)^go_gc_gomemlimit_bytes (\S+)$`)
	waitUntil(t, func() bool {
		runtime.GC()
		m := limit.FindStringSubmatch(scrape(metricsAddr))
		if m == nil {
			return false
		}
		v, err := strconv.ParseFloat(m[1], 64)
		return err == nil && v < math.MaxInt64/2
	})
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	store, err := delta.OpenLocation(filepath.Join(data, "delta", "itel_cabinet_task_tracking"))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tbl.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := delta.ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(entries) {
		t.Fatalf("table holds %d rows after the graceful stop, want %d (stderr %s)", len(rows), len(entries), errOut)
	}
}

// scrape returns the body of http://addr/metrics, or "" when it cannot.
func scrape(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
