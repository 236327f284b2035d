package pipeline

import (
	"fmt"
	"slices"
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
	w.recent.Rows(res.Rows...)
}

// Status implements metrics.StatusProvider: the worker's last table
// commits and the newest rows it wrote, for the live page of its metrics
// endpoint.
func (w *Worker) Status() metrics.Status { return w.recent.Status() }

// retainedFields are the top-level event fields the worker reads after a
// commit: the success record's fields (a dotted path's first element, and
// the whole path, which as a top-level key wins) and the status field.
// A path's first element may be empty (".x" reads the key "" of the
// event), so an empty name is kept too, but not an unset status field.
func retainedFields(cfg *config.Worker) []string {
	var names []string
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, f := range cfg.SuccessRecord.Fields {
		add(f)
		add(topField(f))
	}
	if cfg.StatusField != "" {
		add(cfg.StatusField)
	}
	return names
}
