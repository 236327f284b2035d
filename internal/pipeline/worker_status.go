package pipeline

import (
	"fmt"
	"time"

	"kpipe/internal/config"
	"kpipe/internal/metrics"
)

// newRecent is the live page's record of the worker cfg describes: its
// table commits and the newest rows written, the status field's column
// first.
func newRecent(cfg *config.Worker) *metrics.Recent {
	var lead []string
	if cfg.StatusField != "" {
		lead = append(lead, cfg.StatusField)
	}
	r := metrics.NewRecent("tracking worker "+cfg.Name, "last table commits", "newest rows written", lead...)
	r.SetFacts(
		metrics.Fact{Name: "input topic", Value: cfg.InputTopic},
		metrics.Fact{Name: "consumer group", Value: cfg.ConsumerGroup},
	)
	return r
}

// recordFlush keeps what a flush made durable for the live page.
func (w *Worker) recordFlush(res *FlushResult) {
	if res.Version < 0 && len(res.Written) == 0 {
		return
	}
	note := ""
	if res.Duplicates > 0 || len(res.Rejected) > 0 {
		note = fmt.Sprintf("%d duplicates dropped, %d rejected", res.Duplicates, len(res.Rejected))
	}
	w.recent.Commit(metrics.Commit{Time: time.Now(), Target: res.Table, Version: res.Version, Rows: len(res.Written), Note: note})
	if n := len(res.Written); n > 0 {
		evs := res.Written[max(0, n-10):]
		rows := make([]map[string]any, len(evs))
		for i, ev := range evs {
			rows[i] = ev.Fields
		}
		w.recent.Rows(rows...)
	}
}

// Status implements metrics.StatusProvider: the worker's last table
// commits and the newest rows it wrote, for the live page of its metrics
// endpoint.
func (w *Worker) Status() metrics.Status { return w.recent.Status() }
