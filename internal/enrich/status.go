package enrich

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"kpipe/internal/metrics"
)

// newRecent is the live page's record of the worker o describes: its
// committed transactions and the newest records its plugins published.
func newRecent(o Options) *metrics.Recent {
	r := metrics.NewRecent("enrichment worker "+o.Name, "last transactions", "newest records published",
		"topic", "task_status", "event_type", "assignment_id")
	r.SetFacts(
		metrics.Fact{Name: "input topic", Value: o.Topic},
		metrics.Fact{Name: "consumer group", Value: o.Group},
		metrics.Fact{Name: "transactional id", Value: o.TransactionalID},
	)
	return r
}

// maxRecentDecoded is how many of a transaction's records recordTxn
// decodes for the page.
const maxRecentDecoded = 10

// recordTxn keeps a committed transaction of b for the live page: its
// counts, and the top-level fields of its newest plugin records.
func (w *Worker) recordTxn(b *batch) {
	errRecs := 0
	for _, m := range b.meta {
		if m.errRec {
			errRecs++
		}
	}
	events := len(w.proc.items)
	if events == 0 && len(b.send) == 0 {
		return
	}
	w.recent.Commit(metrics.Commit{
		Time: time.Now(), Target: "transaction", Version: -1, Rows: events,
		Note: fmt.Sprintf("%d published, %d error records", len(b.send)-errRecs, errRecs),
	})
	var rows []map[string]any
	for i := len(b.send) - 1; i >= 0 && len(rows) < maxRecentDecoded; i-- {
		if i < len(b.meta) && b.meta[i].errRec {
			continue
		}
		rec := b.send[i]
		row := map[string]any{}
		dec := json.NewDecoder(bytes.NewReader(rec.Value))
		dec.UseNumber()
		if err := dec.Decode(&row); err != nil {
			row = map[string]any{}
		}
		row["topic"] = rec.Topic
		row["bytes"] = int64(len(rec.Value))
		rows = append(rows, row)
	}
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i] // oldest first
	}
	w.recent.Rows(rows...)
}

// Status implements metrics.StatusProvider: the worker's last committed
// transactions and the newest records its plugins published, for the live
// page of its metrics endpoint.
func (w *Worker) Status() metrics.Status { return w.recent.Status() }
