package stack

import (
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Snapshot is what the stack has done so far, read from its metrics: the
// numbers of kpipe up's status block and of its closing summary.
type Snapshot struct {
	// Generated counts the events the generator published to
	// claimx.events; Enriched, Triggered and Written the events the
	// enrichment worker consumed, those a plugin trigger matched and the
	// rows the tracking worker committed to its table.
	Generated                    int64
	Enriched, Triggered, Written int64
	// Lag is what the workers' groups have not consumed yet, summed over
	// their partitions.
	Lag int64
	// Errors counts the records sent to the error topics, by class (the
	// tracking worker's) or reason (the enrichment worker's).
	Errors map[string]int64
	// StorageErrors counts the Delta commits that failed and were retried:
	// nothing of them is on the error topics.
	StorageErrors int64
	// TableVersion is the table's latest version this process committed
	// or read, -1 before any; Files the data files this run wrote.
	TableVersion int64
	Files        int64
}

// Snapshot reads the stack's metrics now. It is safe to call from any
// goroutine, before, during and after Run.
func (s *Stack) Snapshot() Snapshot {
	sums := sumMetrics(s.reg)
	sn := Snapshot{
		Generated:     s.pub.Published(),
		Enriched:      int64(sums["kpipe_enrich_events_consumed_total"]),
		Triggered:     int64(sums["itel_plugin_events_triggered_total"]),
		Written:       int64(sums["itel_worker_delta_writes_total"]),
		Lag:           int64(sums["kpipe_consumer_lag"]),
		StorageErrors: int64(sums["itel_worker_delta_write_errors_total"]),
		Files:         int64(sums["kpipe_delta_files_written_total"]),
		TableVersion:  -1,
		Errors:        errorsByKind(s.reg),
	}
	if v, ok := metricSum(s.reg, "kpipe_delta_table_version"); ok {
		sn.TableVersion = int64(v)
	}
	return sn
}

// ErrorsLine lists Errors sorted by name ("not_found=2 validation=1"), ""
// when there are none.
func (sn Snapshot) ErrorsLine() string {
	names := make([]string, 0, len(sn.Errors))
	for k := range sn.Errors {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s=%d", k, sn.Errors[k])
	}
	return strings.Join(parts, " ")
}

// errorsByKind counts the failures g counted by kind: the enrichment
// worker's by reason, the workers' by class.
func errorsByKind(g prometheus.Gatherer) map[string]int64 {
	out := map[string]int64{}
	mfs, err := g.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		var label string
		switch mf.GetName() {
		case "kpipe_enrich_events_failed_total":
			label = "reason"
		case "kpipe_worker_errors_total":
			label = "class"
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v > 0 {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == label {
						out[lp.GetValue()] += int64(v)
					}
				}
			}
		}
	}
	return out
}

// printErrors says, once the workers have drained, what failed: the
// records on the error topics by kind, and apart from them the Delta
// commits that failed and were retried (those are in the logs, not on the
// error topics).
func (s *Stack) printErrors() {
	if b := ErrorBreakdown(s.reg); b != "" {
		fmt.Fprintf(s.out, "error records by kind: %s (on the error topics %s: kpipe dlq list)\n", b, strings.Join(s.errTopics, ", "))
	}
	if n, _ := metricSum(s.reg, "itel_worker_delta_write_errors_total"); n > 0 {
		fmt.Fprintf(s.out, "storage errors: %.0f Delta commits failed and were retried (see the log; nothing of them is on the error topics)\n", n)
	}
}
