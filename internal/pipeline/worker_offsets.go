package pipeline

import (
	"context"
	"errors"
	"fmt"
	"kpipe/internal/clock"
	"kpipe/internal/kafka"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ResetPolicy is what a worker does with a partition whose stored offsets
// (the table's txn version, the group's committed offset) do not fit the
// partition's log.
type ResetPolicy string

// Reset policies: none stops the partition (the default), earliest starts
// it at the log's first offset, latest at its end.
const (
	ResetNone     ResetPolicy = ""
	ResetEarliest ResetPolicy = "earliest"
	ResetLatest   ResetPolicy = "latest"
)

// ParseResetPolicy parses a --reset-offsets value: "", "none", "earliest"
// or "latest".
func ParseResetPolicy(s string) (ResetPolicy, error) {
	switch s {
	case "", "none":
		return ResetNone, nil
	case "earliest", "latest":
		return ResetPolicy(s), nil
	}
	return "", fmt.Errorf("reset policy %q: want earliest, latest or none", s)
}

// OffsetMismatchError says that what the worker has stored for a partition
// does not fit the partition's log: the next offset to read (after the
// table's txn version, or the group's committed offset) is past the log's
// end (the topic was recreated or the broker's data reset: reading on
// would skip new records) or before its start (records expired before they
// were handled: they are lost from Kafka).
type OffsetMismatchError struct {
	Worker    string
	Topic     string
	Partition int32
	// Next is the offset the stored state says to read next; Table the
	// table's txn version (-1: none) and Committed the group's committed
	// offset (-1: none).
	Next, Table, Committed int64
	// Start and End are the partition's log start and end offsets.
	Start, End int64
	// TableTopicID is the topic id the table recorded with the
	// partition's txn and TopicID the broker's id of the topic now, where
	// both are known; they differ when the topic was recreated.
	TableTopicID, TopicID string
}

// Recreated reports whether the mismatch is a topic id that changed.
func (e *OffsetMismatchError) Recreated() bool {
	return e.TableTopicID != "" && e.TopicID != "" && e.TableTopicID != e.TopicID
}

func (e *OffsetMismatchError) Error() string {
	where := fmt.Sprintf("%s partition %d", e.Topic, e.Partition)
	if e.Recreated() {
		return fmt.Sprintf("%s: the table's txn version %d belongs to topic id %s, but the topic now has id %s: it was deleted and recreated, and its offsets started again; "+
			"restart with --reset-offsets earliest to write the new topic's records from %d, or --reset-offsets latest to start at its end (%d)",
			where, e.Table, e.TableTopicID, e.TopicID, e.Start, e.End)
	}
	if e.Next > e.End {
		return fmt.Sprintf("%s: stored state says to read from offset %d (table txn version %d, group offset %d) but the partition ends at %d: the topic was recreated or the broker's data reset, and reading on would skip every new record up to %d; "+
			"restart with --reset-offsets earliest to write the partition's records from %d, or --reset-offsets latest to start at its end",
			where, e.Next, e.Table, e.Committed, e.End, e.Next-1, e.Start)
	}
	return fmt.Sprintf("%s: stored state says to read from offset %d (table txn version %d, group offset %d) but the partition's log starts at %d: records %d to %d expired before they were written; "+
		"restart with --reset-offsets earliest to go on from %d (the expired records are lost from Kafka)",
		where, e.Next, e.Table, e.Committed, e.Start, e.Next, e.Start-1, e.Start)
}

// offsetOverrider is implemented by flushers that drop records at or below
// the stored offset: after a reset they must use the new floor instead,
// until their next commit stores it.
type offsetOverrider interface {
	OverrideStored(topic string, partition int32, floor int64, reason string)
}

// placement is where one assigned partition starts and what it knows.
type placement struct {
	start    int64 // first offset to fetch; -1: the log's start
	floor    int64 // records at or below are in the table
	mismatch *OffsetMismatchError
	reset    ResetPolicy // set when a reset moved the partition
}

// partitionFacts is what the worker knows of an assigned partition.
type partitionFacts struct {
	// Table is the table's txn version (-1: none); Committed the group's
	// committed offset, the next offset to read (-1: none).
	Table, Committed int64
	// Start and End are the log's bounds.
	Start, End int64
	// TableTopicID and TopicID are the topic ids the table recorded and
	// the broker reports ("": unknown).
	TableTopicID, TopicID string
}

// place decides where partition p starts from what is known of it.
func place(worker, topic string, p int32, f partitionFacts, policy ResetPolicy) placement {
	next := int64(-1)
	if f.Table >= 0 {
		next = f.Table + 1
	}
	next = max(next, f.Committed)
	pl := placement{start: next, floor: f.Table}
	mm := &OffsetMismatchError{Worker: worker, Topic: topic, Partition: p, Next: next, Table: f.Table, Committed: f.Committed,
		Start: f.Start, End: f.End, TableTopicID: f.TableTopicID, TopicID: f.TopicID}
	recreated := mm.Recreated()
	if !recreated && (next < 0 || (next >= f.Start && next <= f.End)) {
		return pl
	}
	switch policy {
	case ResetEarliest:
		pl.start, pl.reset = f.Start, ResetEarliest
		if recreated || next > f.End {
			pl.floor = f.Start - 1 // the stored offsets belong to another log
		}
	case ResetLatest:
		pl.start, pl.floor, pl.reset = f.End, f.End-1, ResetLatest
	default:
		pl.mismatch = mm
	}
	if pl.reset != "" {
		pl.mismatch = mm // kept for the log line and commitInfo
	}
	return pl
}

// adjustOffsets runs when partitions are assigned, before fetching starts:
// it reads the table's txn versions and the partitions' log bounds, and
// starts each partition after what the table holds, whatever the group's
// committed offset says. A partition whose stored state does not fit its
// log is paused with an OffsetMismatchError, unless a reset policy says
// where to start.
func (w *Worker) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	if w.dead.Load() {
		return offsets, nil
	}
	parts := offsets[w.cfg.InputTopic]
	if len(parts) == 0 {
		w.health.joinedEmpty()
		return offsets, nil
	}
	ps := make([]int32, 0, len(parts))
	for p := range parts {
		ps = append(ps, p)
	}
	stored := map[int32]int64{}
	var starts, ends map[int32]int64
	var tableIDs map[int32]string
	var brokerID string
	keeper, _ := w.flusher.(topicIDKeeper)
	bo := newBackoff()
	for {
		var err error
		if w.flusher != nil {
			stored, err = w.flusher.StoredOffsets(ctx, w.cfg.InputTopic, ps)
		}
		if err == nil {
			starts, ends, err = kafka.PartitionBounds(ctx, w.adm, w.cfg.InputTopic)
		}
		if err == nil && keeper != nil {
			if brokerID, err = topicID(ctx, w.adm, w.cfg.InputTopic); err == nil && brokerID != "" {
				tableIDs, err = keeper.StoredTopicIDs(ctx, w.cfg.InputTopic, ps)
			}
		}
		if err == nil {
			break
		}
		if errors.Is(err, ErrFatal) {
			// A table kpipe must not write: end Run with it.
			w.abort(err)
			return nil, err
		}
		d := bo.NextBackOff()
		w.log.Warn("reading_stored_offsets_failed", "retry_in", d, "error", err)
		if clock.Sleep(ctx, d) != nil {
			return nil, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var pause []int32
	recreated := false
	for p, off := range parts {
		st := newPartState()
		committed := int64(-1)
		if eo := off.EpochOffset(); eo.Offset >= 0 {
			committed = eo.Offset
			st.committed = eo.Offset - 1
		}
		table, ok := stored[p]
		if !ok {
			table = -1
		}
		pl := place(w.cfg.Name, w.cfg.InputTopic, p, partitionFacts{
			Table: table, Committed: committed, Start: starts[p], End: ends[p],
			TableTopicID: tableIDs[p], TopicID: brokerID,
		}, w.reset)
		if pl.mismatch != nil && pl.mismatch.Recreated() && pl.reset == "" {
			recreated = true
		}
		st.floor = pl.floor
		if pl.start >= 0 && (committed < 0 || pl.start != committed) {
			parts[p] = kgo.NewOffset().At(pl.start).WithEpoch(-1)
		}
		label := strconv.Itoa(int(p))
		switch {
		case pl.mismatch != nil && pl.reset == "":
			st.stopped = true
			pause = append(pause, p)
			w.health.stop(p, pl.mismatch)
			w.mismatch.WithLabelValues(label).Set(1)
			w.log.Error("partition_offsets_mismatch", "partition", p, "error", pl.mismatch)
		case pl.reset != "":
			w.resets.WithLabelValues(string(pl.reset)).Inc()
			w.mismatch.WithLabelValues(label).Set(0)
			if o, ok := w.flusher.(offsetOverrider); ok {
				o.OverrideStored(w.cfg.InputTopic, p, pl.floor, fmt.Sprintf("reset-offsets %s: %v", pl.reset, pl.mismatch))
			}
			w.log.Warn("partition_offsets_reset", "partition", p, "policy", string(pl.reset), "start", pl.start, "was", pl.mismatch.Next)
		default:
			w.mismatch.WithLabelValues(label).Set(0)
		}
		w.parts[p] = st
		start := pl.start
		if start < 0 {
			start = starts[p]
		}
		if !st.stopped {
			w.health.assigned(p, start)
		}
		w.log.Info("partition_assigned", "partition", p, "table_offset", table, "group_offset", committed, "start", start, "log_start", starts[p], "log_end", ends[p])
	}
	if keeper != nil && brokerID != "" && !recreated {
		// From now on the commits record the id the offsets belong to.
		// While a recreated topic waits for a reset, the old id stays.
		keeper.SetTopicID(w.cfg.InputTopic, brokerID)
	}
	// The loop pauses them before its next poll (the client may not be
	// handed to the worker yet while the group first assigns).
	w.toPause = append(w.toPause, pause...)
	return offsets, nil
}
