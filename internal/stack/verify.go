package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"kpipe/internal/delta"
	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

// DuplicatesDroppedMetric is the counter of the rows the delta_writer
// dropped because the table held their event already; kpipe up's summary
// prints its sum.
const DuplicatesDroppedMetric = "kpipe_duplicates_dropped_total"

// checkEvery is how often a --events run looks at the table and the
// consumer groups.
const checkEvery = 250 * time.Millisecond

// generateAndVerify produces o.Events events through sink, waits until both workers
// have nothing left in Kafka and the table is stable, and checks the table
// by event id against the simulator's ground truth: every tracked event of
// this run once.
func (s *Stack) generateAndVerify(ctx context.Context, pub *kafka.Publisher, sink sim.Sink) error {
	o, out, world := s.o, s.out, s.world
	start := time.Now()
	ids := &tableIDs{path: s.info.Table}
	// A table kept from earlier runs (the same --data) holds their rows:
	// what this run adds is told apart by id.
	before, err := ids.read(ctx)
	if err != nil {
		return err
	}
	before.counts = maps.Clone(before.counts) // ids' own map goes on counting
	if before.rows > 0 {
		fmt.Fprintf(out, "the table already holds %d rows of earlier runs; checking this run's tracked events by id\n", before.rows)
	}
	errFrom, err := endOffsets(ctx, s.admin, s.errTopics...)
	if err != nil {
		return err
	}
	if err := world.Generate(ctx, sim.GenerateOptions{Rate: o.Rate, Limit: o.Events}, sink); err != nil {
		return fmt.Errorf("generating events: %w", err)
	}
	if err := pub.Flush(ctx); err != nil {
		return err
	}
	want := expectedEvents(world, o.Events, sim.TemplateITelCabinet)
	fmt.Fprintf(out, "generated %d events in %s; waiting for the %d events of task %d and for both workers to finish\n",
		o.Events, time.Since(start).Round(time.Millisecond), len(want), sim.TemplateITelCabinet)

	var (
		prev, cur  *checkState
		lastChange = time.Now()
	)
	for {
		lags, err := groupLags(ctx, s.admin, s.seeds, s.lagOf)
		if err != nil {
			return err
		}
		tbl, err := ids.read(ctx)
		if err != nil {
			return err
		}
		cur = &checkState{lags: lags, table: tbl}
		if settled(prev, cur) {
			break
		}
		if cur.moved(prev) {
			lastChange = time.Now()
		} else if time.Since(lastChange) > o.WaitTimeout {
			return waitTimeout(cur, want, o.WaitTimeout)
		}
		prev = cur
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(checkEvery):
		}
	}
	r := tableCheck{want: want, before: before.counts, table: cur.table, lags: cur.lags}
	if missing := r.missing(); len(missing) > 0 && len(s.errTopics) > 0 {
		errored, err := erroredEvents(ctx, s.admin, s.seeds, errFrom, want)
		if err != nil {
			return err
		}
		r.errored = len(errored)
	}
	r.dropped, r.droppedKnown = metricSum(s.reg, DuplicatesDroppedMetric)
	return reportTable(out, s.info.Table, r, time.Since(start))
}

// checkState is one look at the pipeline: what the groups have left in
// Kafka and what the table holds.
type checkState struct {
	lags  []topicLag
	table tableState
}

// settled reports whether the pipeline is done with what was generated:
// both looks found nothing left in Kafka, nothing was produced and the
// table did not change between them. Only then is the table's content
// final for this run.
func settled(prev, cur *checkState) bool {
	if prev == nil || !drained(prev.lags) || !drained(cur.lags) || prev.table.version != cur.table.version {
		return false
	}
	if len(prev.lags) != len(cur.lags) {
		return false
	}
	for i := range cur.lags {
		if prev.lags[i].End != cur.lags[i].End {
			return false
		}
	}
	return true
}

// moved reports whether anything changed since prev: the table, or what
// is produced or left in Kafka.
func (c *checkState) moved(prev *checkState) bool {
	if prev == nil || prev.table.version != c.table.version || len(prev.lags) != len(c.lags) {
		return true
	}
	for i := range c.lags {
		if prev.lags[i] != c.lags[i] {
			return true
		}
	}
	return false
}

// waitTimeout is the error of a run that stopped moving before it was
// done: what the table holds of want and what is left in Kafka.
func waitTimeout(cur *checkState, want map[string]bool, after time.Duration) error {
	held := 0
	for id := range want {
		if cur.table.counts[id] > 0 {
			held++
		}
	}
	left := "nothing left in Kafka"
	if l := lagText(cur.lags); l != "" {
		left = "left in Kafka: " + l
	}
	return fmt.Errorf("the workers have not moved for %s (%s); the table holds %d of the %d tracked events: see the logs above and the error topics", after, left, held, len(want))
}

// lagText lists the groups with records left ("claimx.events 12 (group
// g)"), "" when none has.
func lagText(lags []topicLag) string {
	var parts []string
	for _, l := range lags {
		if l.Records > 0 {
			parts = append(parts, fmt.Sprintf("%s %d (group %s)", l.Topic, l.Records, l.Group))
		}
	}
	return strings.Join(parts, ", ")
}

// expectedEvents returns the ids of the events of template among the first
// n events of the world. The set costs a map entry and an id per tracked
// event; nothing else is rendered.
func expectedEvents(world *sim.Sim, n int, template int64) map[string]bool {
	want := map[string]bool{}
	world.TaskEvents(n, func(id string, taskID int64) {
		if taskID == template {
			want[id] = true
		}
	})
	return want
}

// tableCheck is what a --events run found: the tracked events it
// generated (want), the table's event ids before it and at the end, what
// was left in Kafka, and the counters it reports.
type tableCheck struct {
	want   map[string]bool
	before map[string]int
	table  tableState
	lags   []topicLag
	// errored counts the missing events whose messages are on the error
	// topics (their rows not written).
	errored int
	// dropped is the sum of DuplicatesDroppedMetric; droppedKnown is false
	// when no such metric is registered.
	dropped      float64
	droppedKnown bool
}

// missing returns the tracked events the table lacks, sorted.
func (c *tableCheck) missing() []string {
	var ids []string
	for id := range c.want {
		if c.table.counts[id] == 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// duplicated returns the tracked events the table holds more than once,
// sorted.
func (c *tableCheck) duplicated() []string {
	var ids []string
	for id := range c.want {
		if c.table.counts[id] > 1 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// unexpected counts the rows this run added for events it did not track.
func (c *tableCheck) unexpected() int {
	n := 0
	for id, k := range c.table.counts {
		if !c.want[id] {
			n += max(k-c.before[id], 0)
		}
	}
	return n
}

// examples lists up to three of ids.
func examples(ids []string) string {
	if len(ids) > 3 {
		return strings.Join(ids[:3], ", ") + ", ..."
	}
	return strings.Join(ids, ", ")
}

// reportTable prints the summary of a --events run and fails unless the
// table holds every tracked event exactly once and nothing is left in
// Kafka.
func reportTable(w io.Writer, tablePath string, c tableCheck, took time.Duration) error {
	missing, dups, unexpected := c.missing(), c.duplicated(), c.unexpected()
	fmt.Fprintf(w, "\ntable %s\n  rows       %d (%d tracked events this run)\n  missing    %d", tablePath, c.table.rows, len(c.want), len(missing))
	if c.errored > 0 {
		fmt.Fprintf(w, " (%d of them on the error topics)", c.errored)
	}
	fmt.Fprintf(w, "\n  duplicate  %d\n  unexpected %d\n", len(dups), unexpected)
	if c.droppedKnown {
		fmt.Fprintf(w, "  dropped    %.0f duplicates (%s)\n", c.dropped, DuplicatesDroppedMetric)
	}
	fmt.Fprintf(w, "  took       %s\n", took.Round(time.Millisecond))
	fmt.Fprintf(w, "\nquery it:\n  kpipe query --table %s \"SELECT task_status, count(*) FROM itel_cabinet_task_tracking GROUP BY 1\"\n", tablePath)
	if l := lagText(c.lags); l != "" {
		return fmt.Errorf("the workers have not finished: left in Kafka: %s", l)
	}
	if len(missing)+len(dups)+unexpected > 0 {
		msg := fmt.Sprintf("the table does not match the simulator's ground truth: %d missing, %d duplicated, %d unexpected", len(missing), len(dups), unexpected)
		if len(dups) > 0 {
			msg += "; duplicated: " + examples(dups)
		}
		if len(missing) > 0 {
			msg += "; missing: " + examples(missing)
			if c.errored > 0 {
				msg += fmt.Sprintf(" (%d on the error topics: see kpipe dlq --help)", c.errored)
			}
		}
		return errors.New(msg)
	}
	fmt.Fprintln(w, "\nOK: the table holds every tracked event exactly once")
	return nil
}

// tableState is the table's event ids at one version.
type tableState struct {
	version int64 // -1: no table yet
	rows    int
	// counts are the rows by event_id. The map of a tableIDs' state is its
	// own, kept up to date by its next read: clone it to keep it.
	counts map[string]int
}

// tableIDs reads a table's event ids, each data file once: files are
// never changed, only added and removed. It keeps the counts of the
// active files and adjusts them by the files added and removed, so that
// a look at a table of a million rows costs its new files only.
type tableIDs struct {
	path   string
	store  delta.Storage
	files  map[string][]string // path: event ids of its rows
	counts map[string]int      // rows by event_id over files
	rows   int
}

// read returns the table's event ids now.
func (t *tableIDs) read(ctx context.Context) (tableState, error) {
	st := tableState{version: -1, counts: map[string]int{}}
	if t.store == nil {
		store, err := delta.OpenLocation(t.path)
		if err != nil {
			return st, err
		}
		t.store, t.files, t.counts = store, map[string][]string{}, map[string]int{}
	}
	tbl, err := delta.Open(ctx, t.store)
	if errors.Is(err, delta.ErrNotATable) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	snap, err := tbl.Snapshot(ctx)
	if errors.Is(err, delta.ErrNotATable) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	st.version = snap.Version()
	var fresh []delta.AddFile
	active := map[string]bool{}
	for _, f := range snap.Files() {
		active[f.Path] = true
		if _, ok := t.files[f.Path]; !ok {
			fresh = append(fresh, f)
		}
	}
	if len(fresh) > 0 {
		got := make(map[string][]string, len(fresh))
		err := delta.ReadColumns(ctx, t.store, snap, fresh, []string{"event_id"}, func(b *delta.ColumnBatch) error {
			path := b.File().Path
			for i := range b.Len() {
				got[path] = append(got[path], string(b.Bytes(0, i)))
			}
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("reading the event ids of %s: %w", t.path, err)
		}
		for _, f := range fresh {
			ids := got[f.Path] // nil: a file of no rows
			t.files[f.Path] = ids
			t.add(ids, 1)
		}
	}
	for path, ids := range t.files {
		if !active[path] {
			t.add(ids, -1)
			delete(t.files, path)
		}
	}
	st.rows, st.counts = t.rows, t.counts
	return st, nil
}

// add counts the rows of ids, by 1 for a file added and -1 for one removed.
func (t *tableIDs) add(ids []string, by int) {
	t.rows += by * len(ids)
	for _, id := range ids {
		if n := t.counts[id] + by; n > 0 {
			t.counts[id] = n
		} else {
			delete(t.counts, id)
		}
	}
}

// TableEventIDs counts the rows of the table at path by event_id (none:
// no table there yet).
func TableEventIDs(ctx context.Context, path string) (map[string]int, error) {
	st, err := (&tableIDs{path: path}).read(ctx)
	return st.counts, err
}

// TableRows reads every row of the table at path.
func TableRows(ctx context.Context, path string) ([]map[string]any, error) {
	store, err := delta.OpenLocation(path)
	if err != nil {
		return nil, err
	}
	t, err := delta.Open(ctx, store)
	if err != nil {
		return nil, err
	}
	snap, err := t.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return delta.ReadRows(ctx, store, snap)
}
