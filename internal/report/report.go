// Package report computes task lifecycles from the tracking table: for each
// assignment of one task template, its statuses over time, and across
// assignments the time spent in each status, time to complete, SLA
// compliance and the assignments stuck in a status (SPEC.md, "Advanced
// Tracking").
//
// The lifecycle logic is SQL (DuckDB window functions) over the view that
// query.Open creates; Go only collects and formats the results:
//
//	db, err := query.Open(ctx, "data/delta/itel_cabinet_task_tracking")
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	rep, err := report.Build(ctx, db, report.Options{TaskID: templateID, AsOf: asOf, SLA: 72 * time.Hour, StuckAfter: 72 * time.Hour, Limit: 20})
//	if err != nil {
//		return err
//	}
//	err = report.Write(os.Stdout, rep, query.FormatTable)
//
// Rules, applied in this order:
//
//   - Rows of the task template with an assignment_id count; a replayed
//     event (several rows with one event_id) counts once, as its first
//     processed row.
//   - Events after Options.AsOf are left out: the report shows the state at
//     AsOf.
//   - An assignment's rows are ordered by event_timestamp, ties by
//     processed_timestamp, then event_id.
//   - A row's status lasts until the assignment's next row. The last row of
//     an open assignment lasts until AsOf; the final status of a completed
//     or cancelled assignment has no duration.
//   - A transition is a row whose status differs from the previous row's
//     (updates that keep the status are not transitions). Reassignments and
//     reopens are transitions into reassigned and reopened.
//   - An assignment is created at its earliest task_created_at, or first
//     seen if earlier; it is closed at the start of its current status when
//     that is completed or cancelled. Time open runs from created to closed,
//     or to AsOf. Time to complete is the time open of completed ones.
//   - The current status started at the first row of the last run of rows
//     with that status; an open assignment is stuck when AsOf minus that
//     start exceeds StuckAfter.
//   - Medians and 90th percentiles interpolate linearly between values
//     (DuckDB quantile_cont).
package report

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"kpipe/internal/query"
)

// Defaults of Options.
const (
	DefaultSLA        = 72 * time.Hour
	DefaultStuckAfter = 72 * time.Hour
	DefaultLimit      = 20
)

// Options configures Build.
type Options struct {
	// TaskID is the task template whose assignments are reported (the
	// template id the plugin's trigger is keyed by). Required.
	TaskID int64
	// AsOf is the moment the report describes; when zero, AsOfRule picks
	// it. Open intervals run to it and later events are left out.
	AsOf time.Time
	// AsOfRule picks AsOf when it is zero: AsOfNow (also ""), AsOfLatest or
	// AsOfAuto. Report.AsOfSource says which was used.
	AsOfRule string
	// Now is the clock AsOfNow and AsOfAuto read; nil means time.Now.
	Now func() time.Time
	// Timelines fills Assignment.History (every counted row of every
	// assignment), which the HTML page and the timeline CSV section show.
	Timelines bool
	// SLA is the time within which an assignment should be completed; 0
	// means DefaultSLA.
	SLA time.Duration
	// StuckAfter is how long an open assignment may stay in one status
	// before it is listed as stuck; 0 means DefaultStuckAfter.
	StuckAfter time.Duration
	// Limit caps the stuck list (Report.Stuck); Summary.Stuck still counts
	// them all. 0 means DefaultLimit, a negative value no limit.
	Limit int
}

// Rules of Options.AsOfRule.
const (
	// AsOfNow reports as of the current time.
	AsOfNow = "now"
	// AsOfLatest reports as of the newest event of the task template in
	// the table (now when it has none).
	AsOfLatest = "latest"
	// AsOfAuto is AsOfNow, unless the table's newest event of the task
	// template is older than StuckAfter: then the data ends long before now
	// (simulated or historical data), measuring it against now would call
	// every open assignment stuck, and AsOfLatest is used.
	AsOfAuto = "auto"
)

// Values of Report.AsOfSource.
const (
	AsOfSourceGiven  = "given"
	AsOfSourceNow    = "now"
	AsOfSourceLatest = "newest event"
)

// Report is the lifecycle report of one task template.
type Report struct {
	TaskID int64
	AsOf   time.Time
	// AsOfSource says where AsOf came from: AsOfSourceGiven (Options.AsOf),
	// AsOfSourceNow or AsOfSourceLatest; AsOfNote says why when a rule
	// chose ("the newest event is 330d before now").
	AsOfSource   string
	AsOfNote     string
	SLA          time.Duration
	StuckAfter   time.Duration
	Limit        int
	TableVersion int64

	// Events is the number of distinct events counted.
	Events int64
	// DuplicateEvents is the number of rows left out because another row
	// has the same event_id.
	DuplicateEvents int64
	// LaterEvents is the number of events after AsOf, left out.
	LaterEvents int64
	// DroppedDuplicates is the number of deliveries the writer dropped
	// before they reached the table because their key was there already
	// (the dedupe counts its commits recorded), or -1 when the caller did
	// not read the table's log for it. Build leaves it -1.
	DroppedDuplicates int64

	Summary Summary
	// Statuses is the time spent in each status across assignments, in
	// lifecycle order (assigned, in_progress, reassigned, reopened,
	// completed, cancelled, then others by name).
	Statuses []StatusStats
	// Stuck lists the stuck assignments, longest in their status first, at
	// most Limit of them.
	Stuck []Stuck
	// Assignments holds every assignment's lifecycle, by first seen.
	Assignments []Assignment
}

// Summary is the report across assignments.
type Summary struct {
	Assignments int64
	Open        int64
	Completed   int64
	Cancelled   int64
	// ByStatus counts assignments by current status, in lifecycle order.
	ByStatus []StatusCount
	// MedianTimeToComplete and P90TimeToComplete are nil without completed
	// assignments.
	MedianTimeToComplete *time.Duration
	P90TimeToComplete    *time.Duration
	// CompletedWithinSLA counts completed assignments whose time to
	// complete is at most the SLA; SLAShare is that over Completed, nil
	// without completed assignments.
	CompletedWithinSLA int64
	SLAShare           *float64
	// OpenPastSLA counts open assignments whose time open exceeds the SLA.
	OpenPastSLA int64
	// Stuck counts all stuck assignments (Report.Stuck may be limited).
	Stuck int64
}

// StatusCount is the number of assignments in a status.
type StatusCount struct {
	Status      string
	Assignments int64
}

// StatusStats is the time assignments spent in one status: the median,
// 90th percentile and sum of each assignment's total time in it, over the
// assignments that spent time in it.
type StatusStats struct {
	Status      string
	Assignments int64
	Median      time.Duration
	P90         time.Duration
	Total       time.Duration
}

// Stuck is an open assignment that has been in its status too long.
type Stuck struct {
	AssignmentID int64
	ProjectID    string
	Status       string
	Since        time.Time
	For          time.Duration
}

// Assignment is one assignment's lifecycle.
type Assignment struct {
	AssignmentID int64
	ProjectID    string
	CreatedAt    time.Time
	FirstSeen    time.Time
	LastEvent    time.Time
	Status       string
	StatusSince  time.Time
	Events       int64
	Transitions  int64
	Reassigned   int64
	Reopened     int64
	Completed    bool
	Cancelled    bool
	// ClosedAt is when it was completed or cancelled; zero while open.
	ClosedAt time.Time
	// TimeOpen runs from CreatedAt to ClosedAt, or to the report's AsOf.
	TimeOpen time.Duration
	// TimeInStatus is the time spent in each status, in the order first
	// entered; the final status of a closed assignment is left out.
	TimeInStatus []StatusTime
	// History is every counted row of the assignment in order, with
	// Options.Timelines; nil otherwise.
	History []Change
}

// Change is one row of an assignment's history.
type Change struct {
	Time   time.Time
	Status string
	// Changed is false for a row that kept the previous row's status.
	Changed bool
	// Lasted is how long the status lasted from this row (to the next row,
	// or to AsOf); nil for the final status of a closed assignment.
	Lasted *time.Duration
}

// Open reports whether the assignment is neither completed nor cancelled.
func (a *Assignment) Open() bool { return !a.Completed && !a.Cancelled }

// StatusTime is the time one assignment spent in a status.
type StatusTime struct {
	Status string
	// Entered is how many times the assignment moved into the status.
	Entered int64
	Time    time.Duration
}

// ErrInvalidOptions is returned by Build for a missing task template id or
// negative durations.
var ErrInvalidOptions = errors.New("invalid report options")

func (o *Options) normalize() error {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SLA == 0 {
		o.SLA = DefaultSLA
	}
	if o.StuckAfter == 0 {
		o.StuckAfter = DefaultStuckAfter
	}
	if o.Limit == 0 {
		o.Limit = DefaultLimit
	}
	var errs []error
	if o.TaskID <= 0 {
		errs = append(errs, fmt.Errorf("%w: task id %d: want the task template id, a positive number", ErrInvalidOptions, o.TaskID))
	}
	if o.SLA < 0 {
		errs = append(errs, fmt.Errorf("%w: SLA %v is negative", ErrInvalidOptions, o.SLA))
	}
	if o.StuckAfter < 0 {
		errs = append(errs, fmt.Errorf("%w: stuck-after %v is negative", ErrInvalidOptions, o.StuckAfter))
	}
	switch o.AsOfRule {
	case "", AsOfNow, AsOfLatest, AsOfAuto:
	default:
		errs = append(errs, fmt.Errorf("%w: as-of rule %q: want %s, %s or %s", ErrInvalidOptions, o.AsOfRule, AsOfAuto, AsOfNow, AsOfLatest))
	}
	return errors.Join(errs...)
}

// Temporary tables of the report, in the session Build runs in.
const (
	rowsTable        = "__kpipe_report_rows"
	assignmentsTable = "__kpipe_report_assignments"
	statusTimesTable = "__kpipe_report_status_times"
)

// finalStatuses close an assignment.
const finalStatuses = "('completed', 'cancelled')"

// statusOrder sorts statuses in lifecycle order, unknown ones last.
func statusOrder(col string) string {
	return fmt.Sprintf("coalesce(list_position(['assigned', 'in_progress', 'reassigned', 'reopened', 'completed', 'cancelled'], %s), 99), %s", col, col)
}

// Build computes the report over db's view. It creates temporary tables
// (named __kpipe_report_*) in db's session.
func Build(ctx context.Context, db *query.DB, opts Options) (*Report, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	source, note, err := pickAsOf(ctx, db, &opts)
	if err != nil {
		return nil, fmt.Errorf("report: finding the newest event: %w", err)
	}
	r := &Report{
		TaskID:            opts.TaskID,
		AsOf:              opts.AsOf,
		AsOfSource:        source,
		AsOfNote:          note,
		SLA:               opts.SLA,
		StuckAfter:        opts.StuckAfter,
		Limit:             opts.Limit,
		TableVersion:      db.Version(),
		DroppedDuplicates: -1,
	}
	b := &builder{db: db, o: opts, asOfUS: opts.AsOf.UnixMicro()}
	steps := []struct {
		name string
		fn   func(context.Context, *Report) error
	}{
		{"selecting rows", b.createRows},
		{"counting events", b.counts},
		{"building lifecycles", b.createAssignments},
		{"summarizing", b.summary},
		{"counting current statuses", b.byStatus},
		{"timing statuses", b.statuses},
		{"listing stuck assignments", b.stuck},
		{"listing assignments", b.assignments},
	}
	if opts.Timelines {
		steps = append(steps, struct {
			name string
			fn   func(context.Context, *Report) error
		}{"reading timelines", b.histories})
	}
	for _, s := range steps {
		if err := s.fn(ctx, r); err != nil {
			return nil, fmt.Errorf("report: %s: %w", s.name, err)
		}
	}
	return r, nil
}

type builder struct {
	db     *query.DB
	o      Options
	asOfUS int64
}

func (b *builder) exec(ctx context.Context, stmt string, args ...any) error {
	rows, err := b.db.Query(ctx, stmt, args...)
	if err != nil {
		return err
	}
	return rows.Close()
}

// each runs stmt and calls fn for every row.
func (b *builder) each(ctx context.Context, stmt string, args []any, fn func(*sql.Rows) error) error {
	rows, err := b.db.Query(ctx, stmt, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// createRows selects the task's events up to AsOf, one row per event_id,
// each with its place in its assignment's order, whether it changed the
// status, the run of equal statuses it belongs to and how long its status
// lasted (us, microseconds; NULL for the final status of a closed
// assignment).
func (b *builder) createRows(ctx context.Context, _ *Report) error {
	stmt := `CREATE OR REPLACE TEMP TABLE ` + rowsTable + ` AS
WITH events AS (
  SELECT event_id, event_timestamp AS ts, epoch_us(event_timestamp) AS ts_us,
    processed_timestamp AS processed, assignment_id, project_id,
    task_status AS status, task_created_at AS created_at
  FROM ` + ident(b.db.View()) + `
  WHERE task_id = $1 AND assignment_id IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY processed_timestamp, event_timestamp) = 1
), ordered AS (
  SELECT *,
    row_number() OVER w AS seq,
    lead(ts_us) OVER w AS next_us,
    status IS DISTINCT FROM lag(status) OVER w AS changed
  FROM events
  WHERE ts_us <= $2
  WINDOW w AS (PARTITION BY assignment_id ORDER BY ts, processed, event_id)
), runs AS (
  SELECT *, sum(CAST(changed AS INTEGER)) OVER (PARTITION BY assignment_id ORDER BY seq) AS run
  FROM ordered
)
SELECT *,
  max(run) OVER (PARTITION BY assignment_id) AS last_run,
  CASE
    WHEN next_us IS NOT NULL THEN next_us - ts_us
    WHEN status IN ` + finalStatuses + ` THEN NULL
    ELSE $2 - ts_us
  END AS us
FROM runs`
	return b.exec(ctx, stmt, b.o.TaskID, b.asOfUS)
}

func (b *builder) counts(ctx context.Context, r *Report) error {
	stmt := `SELECT
  count(*) - count(DISTINCT event_id),
  count(DISTINCT event_id) FILTER (WHERE epoch_us(event_timestamp) > $2)
FROM ` + ident(b.db.View()) + `
WHERE task_id = $1 AND assignment_id IS NOT NULL`
	if err := b.each(ctx, stmt, []any{b.o.TaskID, b.asOfUS}, func(rows *sql.Rows) error {
		return rows.Scan(&r.DuplicateEvents, &r.LaterEvents)
	}); err != nil {
		return err
	}
	return b.each(ctx, `SELECT count(*) FROM `+rowsTable, nil, func(rows *sql.Rows) error {
		return rows.Scan(&r.Events)
	})
}

// createAssignments builds one row per assignment, and its time in each
// status.
func (b *builder) createAssignments(ctx context.Context, _ *Report) error {
	stmt := `CREATE OR REPLACE TEMP TABLE ` + assignmentsTable + ` AS
WITH a AS (
  SELECT assignment_id,
    arg_max(project_id, seq) AS project_id,
    least(min(created_at), min(ts)) AS created_at,
    min(ts) AS first_seen,
    max(ts) AS last_event,
    arg_max(status, seq) AS status,
    min(ts) FILTER (WHERE run = last_run) AS status_since,
    count(*) AS events,
    count(*) FILTER (WHERE changed) - 1 AS transitions,
    count(*) FILTER (WHERE changed AND status = 'reassigned') AS reassigned,
    count(*) FILTER (WHERE changed AND status = 'reopened') AS reopened
  FROM ` + rowsTable + `
  GROUP BY assignment_id
)
SELECT *,
  status = 'completed' AS completed,
  status = 'cancelled' AS cancelled,
  CASE WHEN status IN ` + finalStatuses + ` THEN status_since END AS closed_at,
  coalesce(epoch_us(CASE WHEN status IN ` + finalStatuses + ` THEN status_since END), $1) - epoch_us(created_at) AS open_us,
  $1 - epoch_us(status_since) AS in_status_us
FROM a`
	if err := b.exec(ctx, stmt, b.asOfUS); err != nil {
		return err
	}
	stmt = `CREATE OR REPLACE TEMP TABLE ` + statusTimesTable + ` AS
SELECT assignment_id, status,
  count(*) FILTER (WHERE changed) AS entered,
  sum(us) AS us,
  min(seq) AS first_seq
FROM ` + rowsTable + `
GROUP BY assignment_id, status
HAVING sum(us) IS NOT NULL`
	return b.exec(ctx, stmt)
}

func (b *builder) summary(ctx context.Context, r *Report) error {
	stmt := `SELECT
  count(*),
  count(*) FILTER (WHERE NOT completed AND NOT cancelled),
  count(*) FILTER (WHERE completed),
  count(*) FILTER (WHERE cancelled),
  quantile_cont(CAST(open_us AS DOUBLE), 0.5) FILTER (WHERE completed),
  quantile_cont(CAST(open_us AS DOUBLE), 0.9) FILTER (WHERE completed),
  count(*) FILTER (WHERE completed AND open_us <= $1),
  CAST(count(*) FILTER (WHERE completed AND open_us <= $1) AS DOUBLE) / nullif(count(*) FILTER (WHERE completed), 0),
  count(*) FILTER (WHERE NOT completed AND NOT cancelled AND open_us > $1),
  count(*) FILTER (WHERE NOT completed AND NOT cancelled AND in_status_us > $2)
FROM ` + assignmentsTable
	s := &r.Summary
	var med, p90, share sql.NullFloat64
	err := b.each(ctx, stmt, []any{b.o.SLA.Microseconds(), b.o.StuckAfter.Microseconds()}, func(rows *sql.Rows) error {
		return rows.Scan(&s.Assignments, &s.Open, &s.Completed, &s.Cancelled, &med, &p90,
			&s.CompletedWithinSLA, &share, &s.OpenPastSLA, &s.Stuck)
	})
	s.MedianTimeToComplete, s.P90TimeToComplete = optDuration(med), optDuration(p90)
	if share.Valid {
		s.SLAShare = &share.Float64
	}
	return err
}

func (b *builder) byStatus(ctx context.Context, r *Report) error {
	stmt := `SELECT status, count(*) FROM ` + assignmentsTable + ` GROUP BY status ORDER BY ` + statusOrder("status")
	return b.each(ctx, stmt, nil, func(rows *sql.Rows) error {
		var c StatusCount
		if err := rows.Scan(&c.Status, &c.Assignments); err != nil {
			return err
		}
		r.Summary.ByStatus = append(r.Summary.ByStatus, c)
		return nil
	})
}

func (b *builder) statuses(ctx context.Context, r *Report) error {
	stmt := `SELECT status, count(*),
  quantile_cont(CAST(us AS DOUBLE), 0.5),
  quantile_cont(CAST(us AS DOUBLE), 0.9),
  sum(us)
FROM ` + statusTimesTable + `
GROUP BY status
ORDER BY ` + statusOrder("status")
	return b.each(ctx, stmt, nil, func(rows *sql.Rows) error {
		var st StatusStats
		var med, p90 float64
		var total int64
		if err := rows.Scan(&st.Status, &st.Assignments, &med, &p90, &total); err != nil {
			return err
		}
		st.Median, st.P90, st.Total = micros(med), micros(p90), time.Duration(total)*time.Microsecond
		r.Statuses = append(r.Statuses, st)
		return nil
	})
}

func (b *builder) stuck(ctx context.Context, r *Report) error {
	stmt := `SELECT assignment_id, project_id, status, status_since, in_status_us
FROM ` + assignmentsTable + `
WHERE NOT completed AND NOT cancelled AND in_status_us > $1
ORDER BY status_since, assignment_id`
	args := []any{b.o.StuckAfter.Microseconds()}
	if b.o.Limit > 0 {
		stmt += "\nLIMIT $2"
		args = append(args, b.o.Limit)
	}
	return b.each(ctx, stmt, args, func(rows *sql.Rows) error {
		var s Stuck
		var us int64
		if err := rows.Scan(&s.AssignmentID, &s.ProjectID, &s.Status, &s.Since, &us); err != nil {
			return err
		}
		s.Since = s.Since.UTC()
		s.For = time.Duration(us) * time.Microsecond
		r.Stuck = append(r.Stuck, s)
		return nil
	})
}

func (b *builder) assignments(ctx context.Context, r *Report) error {
	stmt := `SELECT assignment_id, project_id, created_at, first_seen, last_event, status, status_since,
  events, transitions, reassigned, reopened, completed, cancelled, closed_at, open_us
FROM ` + assignmentsTable + `
ORDER BY first_seen, assignment_id`
	index := map[int64]int{}
	err := b.each(ctx, stmt, nil, func(rows *sql.Rows) error {
		var a Assignment
		var closed sql.NullTime
		var us int64
		if err := rows.Scan(&a.AssignmentID, &a.ProjectID, &a.CreatedAt, &a.FirstSeen, &a.LastEvent, &a.Status, &a.StatusSince,
			&a.Events, &a.Transitions, &a.Reassigned, &a.Reopened, &a.Completed, &a.Cancelled, &closed, &us); err != nil {
			return err
		}
		a.CreatedAt, a.FirstSeen, a.LastEvent, a.StatusSince = a.CreatedAt.UTC(), a.FirstSeen.UTC(), a.LastEvent.UTC(), a.StatusSince.UTC()
		if closed.Valid {
			a.ClosedAt = closed.Time.UTC()
		}
		a.TimeOpen = time.Duration(us) * time.Microsecond
		index[a.AssignmentID] = len(r.Assignments)
		r.Assignments = append(r.Assignments, a)
		return nil
	})
	if err != nil {
		return err
	}
	stmt = `SELECT assignment_id, status, entered, us FROM ` + statusTimesTable + ` ORDER BY assignment_id, first_seq`
	return b.each(ctx, stmt, nil, func(rows *sql.Rows) error {
		var id, us int64
		var st StatusTime
		if err := rows.Scan(&id, &st.Status, &st.Entered, &us); err != nil {
			return err
		}
		st.Time = time.Duration(us) * time.Microsecond
		if i, ok := index[id]; ok {
			r.Assignments[i].TimeInStatus = append(r.Assignments[i].TimeInStatus, st)
		}
		return nil
	})
}

// pickAsOf sets o.AsOf by o.AsOfRule when it is zero, and says where it
// came from.
func pickAsOf(ctx context.Context, db *query.DB, o *Options) (source, note string, err error) {
	defer func() { o.AsOf = o.AsOf.UTC().Truncate(time.Microsecond) }()
	if !o.AsOf.IsZero() {
		return AsOfSourceGiven, "", nil
	}
	now := o.Now()
	if o.AsOfRule == "" || o.AsOfRule == AsOfNow {
		o.AsOf = now
		return AsOfSourceNow, "", nil
	}
	var newest sql.NullTime
	rows, err := db.Query(ctx, `SELECT max(event_timestamp) FROM `+ident(db.View())+` WHERE task_id = $1 AND assignment_id IS NOT NULL`, o.TaskID)
	if err != nil {
		return "", "", err
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&newest); err != nil {
			return "", "", err
		}
	}
	if err := rows.Close(); err != nil {
		return "", "", err
	}
	if !newest.Valid {
		o.AsOf = now
		return AsOfSourceNow, "the table has no event of the task", nil
	}
	age := now.Sub(newest.Time)
	if o.AsOfRule == AsOfAuto && age <= o.StuckAfter {
		o.AsOf = now
		return AsOfSourceNow, "", nil
	}
	o.AsOf = newest.Time
	note = "--as-of latest"
	if o.AsOfRule == AsOfAuto {
		note = fmt.Sprintf("the newest event is %s before now, more than --stuck-after: simulated or historical data", human(age))
	}
	return AsOfSourceLatest, note, nil
}

// histories fills each assignment's History.
func (b *builder) histories(ctx context.Context, r *Report) error {
	index := make(map[int64]int, len(r.Assignments))
	for i, a := range r.Assignments {
		index[a.AssignmentID] = i
		r.Assignments[i].History = []Change{}
	}
	stmt := `SELECT assignment_id, ts, status, changed, us FROM ` + rowsTable + ` ORDER BY assignment_id, seq`
	return b.each(ctx, stmt, nil, func(rows *sql.Rows) error {
		var id int64
		var c Change
		var us sql.NullInt64
		if err := rows.Scan(&id, &c.Time, &c.Status, &c.Changed, &us); err != nil {
			return err
		}
		c.Time = c.Time.UTC()
		if us.Valid {
			d := time.Duration(us.Int64) * time.Microsecond
			c.Lasted = &d
		}
		if i, ok := index[id]; ok {
			r.Assignments[i].History = append(r.Assignments[i].History, c)
		}
		return nil
	})
}

// micros converts a number of microseconds to a Duration, rounding to the
// microsecond.
func micros(us float64) time.Duration {
	return time.Duration(math.Round(us)) * time.Microsecond
}

func optDuration(v sql.NullFloat64) *time.Duration {
	if !v.Valid {
		return nil
	}
	d := micros(v.Float64)
	return &d
}
