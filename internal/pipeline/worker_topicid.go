package pipeline

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
)

// CommitInfoTopicIDs is the commitInfo key under which the delta writer
// records, for each txn its commit carries (appId), the id of the Kafka
// topic the offsets belong to, where the broker has topic ids. A topic
// deleted and recreated under the same name has a new id: its offsets
// start again at 0, and a txn version of the old log could fit the new
// one and skip its records silently. On assignment the worker compares the
// recorded id with the broker's and stops the partition when they differ.
const CommitInfoTopicIDs = "kpipe.topicIds"

// topicIDHistory is how many of the table's latest commits are searched
// for a partition's recorded topic id. A partition whose last commit is
// older is checked by its offsets only.
const topicIDHistory = 50

// topicIDKeeper is implemented by flushers that record topic ids with
// their commits (the delta writer).
type topicIDKeeper interface {
	// SetTopicID says which topic id the offsets of topic's partitions
	// belong to from now on; every later commit records it.
	SetTopicID(topic, id string)
	// StoredTopicIDs returns the topic id recorded for each partition of
	// topic whose txn was committed within the table's latest commits.
	StoredTopicIDs(ctx context.Context, topic string, partitions []int32) (map[int32]string, error)
}

// topicIDs is the delta writer's record of topic ids.
type topicIDs struct {
	mu sync.Mutex
	m  map[string]string // topic → id
}

func (t *topicIDs) set(topic, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]string{}
	}
	t.m[topic] = id
}

// commitInfo returns the CommitInfoTopicIDs entry for a commit of worker's
// txns (appId → version), or nil when no id is known.
func (t *topicIDs) commitInfo(worker string, txns map[string]int64) map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) == 0 {
		return nil
	}
	out := map[string]any{}
	for topic, id := range t.m {
		prefix := worker + "-" + topic + "-"
		for app := range txns {
			if strings.HasPrefix(app, prefix) {
				out[app] = id
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// SetTopicID implements topicIDKeeper.
func (w *DeltaWriter) SetTopicID(topic, id string) { w.ids.set(topic, id) }

// StoredTopicIDs implements topicIDKeeper.
func (w *DeltaWriter) StoredTopicIDs(ctx context.Context, topic string, partitions []int32) (map[int32]string, error) {
	h, ok := w.tbl.(interface {
		recordedTopicIDs(ctx context.Context, limit int) ([]map[string]any, error)
	})
	if !ok {
		return nil, nil
	}
	infos, err := h.recordedTopicIDs(ctx, topicIDHistory)
	if err != nil {
		return nil, storageError("reading the history of table "+w.cfg.TableName, err)
	}
	out := map[int32]string{}
	for _, p := range partitions {
		app := AppID(w.worker, topic, p)
		for _, m := range infos { // newest first
			if id, ok := m[app].(string); ok {
				out[p] = id
				break
			}
		}
	}
	return out, nil
}

// recordedTopicIDs returns the CommitInfoTopicIDs entries of the table's
// latest limit commits, newest first.
func (d *deltaTable) recordedTopicIDs(ctx context.Context, limit int) ([]map[string]any, error) {
	t, err := d.table(ctx)
	if err != nil {
		return nil, err
	}
	hist, err := t.History(ctx, limit)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, c := range hist {
		if m, ok := c.Info[CommitInfoTopicIDs].(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// topicID returns the broker's id of topic, "" when it has none.
func topicID(ctx context.Context, adm *kadm.Client, topic string) (string, error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return "", fmt.Errorf("reading the metadata of %s: %w", topic, err)
	}
	td, ok := md.Topics[topic]
	if !ok {
		return "", nil
	}
	if td.Err != nil {
		return "", fmt.Errorf("reading the metadata of %s: %w", topic, td.Err)
	}
	if td.ID == (kadm.TopicID{}) {
		return "", nil
	}
	return td.ID.String(), nil
}
