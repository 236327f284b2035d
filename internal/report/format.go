package report

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"kpipe/internal/query"
)

// Write writes r to w in format f:
//
//   - table: titled sections of aligned text, durations as 2d6h30m;
//   - csv: the DefaultSection (assignments), one loadable table; WriteCSV
//     writes any other of Sections; durations in seconds, times RFC 3339;
//   - json: one object, durations in seconds (keys ending in _seconds),
//     times RFC 3339, missing values null;
//   - html (FormatHTML): one self-contained page, charts as inline SVG
//     (WriteHTML).
func Write(w io.Writer, r *Report, f query.Format) error {
	switch f {
	case query.FormatTable:
		return writeTable(w, r)
	case query.FormatCSV:
		return writeCSV(w, r)
	case query.FormatJSON:
		return writeJSON(w, r)
	case FormatHTML:
		return WriteHTML(w, r)
	}
	return fmt.Errorf("format %q: want table, csv, json or html", f)
}

// human formats d rounded to the second as days, hours, minutes and
// seconds, leaving out zero units: 2d6h30m, 45m10s, 0s. A non-zero d
// under a second keeps Go's form (250ms).
func human(d time.Duration) string {
	if d != 0 && d > -time.Second && d < time.Second {
		return d.String()
	}
	d = d.Round(time.Second)
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if d < 0 {
		b.WriteString("-")
		d = -d
	}
	for _, u := range []struct {
		size time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.size; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.size
		}
	}
	return b.String()
}

func humanOpt(d *time.Duration) string {
	if d == nil {
		return "-"
	}
	return human(*d)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func statusTimes(ts []StatusTime, dur func(time.Duration) string, sep string) string {
	parts := make([]string, len(ts))
	for i, st := range ts {
		parts[i] = st.Status + "=" + dur(st.Time)
	}
	return strings.Join(parts, sep)
}

func writeTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	s := &r.Summary
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("Task %d lifecycles as of %s (table version %d)\n", r.TaskID, stamp(r.AsOf), r.TableVersion)
	if line := asOfLine(r); line != "" {
		p("%s\n", line)
	}
	p("events %d, duplicates ignored %d, after as-of ignored %d\n", r.Events, r.DuplicateEvents, r.LaterEvents)
	if r.DroppedDuplicates >= 0 {
		p("deliveries dropped as duplicates by the writer %d\n", r.DroppedDuplicates)
	}
	if s.Assignments == 0 {
		p("no assignments of task %d in the table up to %s\n", r.TaskID, stamp(r.AsOf))
	}

	p("\nSUMMARY\n")
	p("assignments tracked\t%d\n", s.Assignments)
	p("  open\t%d\n", s.Open)
	p("  completed\t%d\n", s.Completed)
	p("  cancelled\t%d\n", s.Cancelled)
	p("time to complete, median\t%s\n", humanOpt(s.MedianTimeToComplete))
	p("time to complete, p90\t%s\n", humanOpt(s.P90TimeToComplete))
	share := "-"
	if s.SLAShare != nil {
		share = strconv.FormatFloat(*s.SLAShare*100, 'f', 1, 64) + "%"
	}
	p("completed within SLA (%s)\t%d of %d (%s)\n", human(r.SLA), s.CompletedWithinSLA, s.Completed, share)
	p("open past SLA (%s)\t%d\n", human(r.SLA), s.OpenPastSLA)
	p("stuck (over %s in status)\t%d\n", human(r.StuckAfter), s.Stuck)

	p("\nCURRENT STATUS\n")
	if len(s.ByStatus) == 0 {
		p("(none)\n")
	} else {
		p("status\tassignments\n")
		for _, c := range s.ByStatus {
			p("%s\t%d\n", c.Status, c.Assignments)
		}
	}

	p("\nTIME IN STATUS (per assignment, across assignments)\n")
	if len(r.Statuses) == 0 {
		p("(none)\n")
	} else {
		p("status\tassignments\tmedian\tp90\ttotal\n")
		for _, st := range r.Statuses {
			p("%s\t%d\t%s\t%s\t%s\n", st.Status, st.Assignments, human(st.Median), human(st.P90), human(st.Total))
		}
	}

	p("\nSTUCK (open, over %s in status; oldest first", human(r.StuckAfter))
	if int64(len(r.Stuck)) < s.Stuck {
		p("; %d of %d", len(r.Stuck), s.Stuck)
	}
	p(")\n")
	if len(r.Stuck) == 0 {
		p("(none)\n")
	} else {
		p("assignment_id\tproject_id\tstatus\tsince\tfor\n")
		for _, st := range r.Stuck {
			p("%d\t%s\t%s\t%s\t%s\n", st.AssignmentID, st.ProjectID, st.Status, stamp(st.Since), human(st.For))
		}
	}

	p("\nASSIGNMENTS (by first seen)\n")
	if len(r.Assignments) == 0 {
		p("(none)\n")
	} else {
		p("assignment_id\tproject_id\tfirst_seen\tstatus\tsince\ttransitions\treassigned\treopened\tclosed_at\ttime_open\ttime_in_status\n")
		for _, a := range r.Assignments {
			closed := stamp(a.ClosedAt)
			if closed == "" {
				closed = "-"
			}
			p("%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", a.AssignmentID, a.ProjectID, stamp(a.FirstSeen), a.Status, stamp(a.StatusSince),
				a.Transitions, a.Reassigned, a.Reopened, closed, human(a.TimeOpen), statusTimes(a.TimeInStatus, human, " "))
		}
	}
	return tw.Flush()
}

// CSV sections, for WriteCSV. Each is one table with a header row, loadable
// as it is (DuckDB's read_csv, a spreadsheet).
const (
	SectionSummary       = "summary"
	SectionCurrentStatus = "current_status"
	SectionTimeInStatus  = "time_in_status"
	SectionStuck         = "stuck"
	SectionAssignments   = "assignments"
	SectionFunnel        = "funnel"
	SectionDistribution  = "time_in_status_distribution"
	SectionSLABreaches   = "sla_breaches"
	SectionTimeline      = "timeline"
	// DefaultSection is what Write writes as CSV: one row per assignment.
	DefaultSection = SectionAssignments
)

// Sections lists the CSV sections, in the order of the table format.
var Sections = []string{SectionSummary, SectionCurrentStatus, SectionTimeInStatus, SectionStuck, SectionAssignments,
	SectionFunnel, SectionDistribution, SectionSLABreaches, SectionTimeline}

// ErrUnknownSection is returned by WriteCSV for a section not in Sections.
var ErrUnknownSection = errors.New("unknown report section")

// NeedsTimelines reports whether section needs a Report built with
// Options.Timelines.
func NeedsTimelines(section string) bool { return section == SectionTimeline }

func writeCSV(w io.Writer, r *Report) error { return WriteCSV(w, r, DefaultSection) }

// WriteCSV writes one section of r (one of Sections) as CSV: a header row
// and its rows; durations in seconds, times RFC 3339, unknown values empty.
// The timeline section needs a Report built with Options.Timelines.
func WriteCSV(w io.Writer, r *Report, section string) error {
	recs, err := csvSection(r, section)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	return cw.WriteAll(recs)
}

func csvSection(r *Report, section string) ([][]string, error) {
	s := &r.Summary
	optSec := func(d *time.Duration) string {
		if d == nil {
			return ""
		}
		return seconds(*d)
	}
	var recs [][]string
	switch section {
	case SectionSummary:
		share := ""
		if s.SLAShare != nil {
			share = strconv.FormatFloat(*s.SLAShare, 'f', -1, 64)
		}
		recs = [][]string{
			{"task_id", "as_of", "table_version", "events", "duplicate_events", "later_events", "dropped_duplicates", "sla_seconds", "stuck_after_seconds",
				"assignments", "open", "completed", "cancelled", "median_time_to_complete_seconds", "p90_time_to_complete_seconds",
				"completed_within_sla", "sla_share", "open_past_sla", "stuck", "as_of_source", "as_of_note"},
			{itoa(r.TaskID), stamp(r.AsOf), itoa(r.TableVersion), itoa(r.Events), itoa(r.DuplicateEvents), itoa(r.LaterEvents), optCount(r.DroppedDuplicates), seconds(r.SLA), seconds(r.StuckAfter),
				itoa(s.Assignments), itoa(s.Open), itoa(s.Completed), itoa(s.Cancelled), optSec(s.MedianTimeToComplete), optSec(s.P90TimeToComplete),
				itoa(s.CompletedWithinSLA), share, itoa(s.OpenPastSLA), itoa(s.Stuck), r.AsOfSource, r.AsOfNote},
		}
	case SectionCurrentStatus:
		recs = [][]string{{"status", "assignments"}}
		for _, c := range s.ByStatus {
			recs = append(recs, []string{c.Status, itoa(c.Assignments)})
		}
	case SectionTimeInStatus:
		recs = [][]string{{"status", "assignments", "median_seconds", "p90_seconds", "total_seconds"}}
		for _, st := range r.Statuses {
			recs = append(recs, []string{st.Status, itoa(st.Assignments), seconds(st.Median), seconds(st.P90), seconds(st.Total)})
		}
	case SectionStuck:
		recs = [][]string{{"assignment_id", "project_id", "status", "since", "for_seconds"}}
		for _, st := range r.Stuck {
			recs = append(recs, []string{itoa(st.AssignmentID), st.ProjectID, st.Status, stamp(st.Since), seconds(st.For)})
		}
	case SectionAssignments:
		recs = [][]string{{"assignment_id", "project_id", "created_at", "first_seen", "last_event", "status", "status_since",
			"events", "transitions", "reassigned", "reopened", "completed", "cancelled", "closed_at", "time_open_seconds", "time_in_status_seconds"}}
		for _, a := range r.Assignments {
			recs = append(recs, []string{itoa(a.AssignmentID), a.ProjectID, stamp(a.CreatedAt), stamp(a.FirstSeen), stamp(a.LastEvent),
				a.Status, stamp(a.StatusSince), itoa(a.Events), itoa(a.Transitions), itoa(a.Reassigned), itoa(a.Reopened),
				strconv.FormatBool(a.Completed), strconv.FormatBool(a.Cancelled), stamp(a.ClosedAt), seconds(a.TimeOpen),
				statusTimes(a.TimeInStatus, seconds, ";")})
		}
	case SectionFunnel:
		recs = [][]string{{"status", "assignments_reached"}}
		for _, f := range Funnel(r) {
			recs = append(recs, []string{f.Status, itoa(f.Assignments)})
		}
	case SectionDistribution:
		recs = [][]string{{"status", "bucket", "from_seconds", "to_seconds", "assignments"}}
		for _, d := range Distributions(r) {
			for _, b := range d.Buckets {
				to := ""
				if b.To > 0 {
					to = seconds(b.To)
				}
				recs = append(recs, []string{d.Status, b.Label, seconds(b.From), to, itoa(b.Assignments)})
			}
		}
	case SectionSLABreaches:
		recs = [][]string{{"day", "completed_late", "still_open"}}
		for _, d := range SLABreaches(r) {
			recs = append(recs, []string{d.Day.Format(time.DateOnly), itoa(d.CompletedLate), itoa(d.StillOpen)})
		}
	case SectionTimeline:
		recs = [][]string{{"assignment_id", "seq", "event_timestamp", "status", "changed", "lasted_seconds"}}
		for _, a := range r.Assignments {
			if a.History == nil {
				return nil, errors.New("report: the timeline section needs a report built with Options.Timelines")
			}
			for i, c := range a.History {
				recs = append(recs, []string{itoa(a.AssignmentID), strconv.Itoa(i + 1), stamp(c.Time), c.Status, strconv.FormatBool(c.Changed), optSec(c.Lasted)})
			}
		}
	default:
		return nil, fmt.Errorf("%w %q: want one of %s", ErrUnknownSection, section, strings.Join(Sections, ", "))
	}
	return recs, nil
}

// JSON shapes of the report.
type (
	jsonReport struct {
		TaskID            int64            `json:"task_id"`
		AsOf              string           `json:"as_of"`
		AsOfSource        string           `json:"as_of_source"`
		AsOfNote          string           `json:"as_of_note,omitempty"`
		TableVersion      int64            `json:"table_version"`
		SLASeconds        float64          `json:"sla_seconds"`
		StuckAfterSeconds float64          `json:"stuck_after_seconds"`
		Events            int64            `json:"events"`
		DuplicateEvents   int64            `json:"duplicate_events"`
		LaterEvents       int64            `json:"later_events"`
		DroppedDuplicates *int64           `json:"dropped_duplicates"`
		Summary           jsonSummary      `json:"summary"`
		TimeInStatus      []jsonStatus     `json:"time_in_status"`
		Stuck             []jsonStuck      `json:"stuck"`
		Assignments       []jsonAssignment `json:"assignments"`
	}
	jsonSummary struct {
		Assignments                 int64       `json:"assignments"`
		Open                        int64       `json:"open"`
		Completed                   int64       `json:"completed"`
		Cancelled                   int64       `json:"cancelled"`
		ByStatus                    []jsonCount `json:"by_status"`
		MedianTimeToCompleteSeconds *float64    `json:"median_time_to_complete_seconds"`
		P90TimeToCompleteSeconds    *float64    `json:"p90_time_to_complete_seconds"`
		CompletedWithinSLA          int64       `json:"completed_within_sla"`
		SLAShare                    *float64    `json:"sla_share"`
		OpenPastSLA                 int64       `json:"open_past_sla"`
		Stuck                       int64       `json:"stuck"`
	}
	jsonCount struct {
		Status      string `json:"status"`
		Assignments int64  `json:"assignments"`
	}
	jsonStatus struct {
		Status        string  `json:"status"`
		Assignments   int64   `json:"assignments"`
		MedianSeconds float64 `json:"median_seconds"`
		P90Seconds    float64 `json:"p90_seconds"`
		TotalSeconds  float64 `json:"total_seconds"`
	}
	jsonStuck struct {
		AssignmentID int64   `json:"assignment_id"`
		ProjectID    string  `json:"project_id"`
		Status       string  `json:"status"`
		Since        string  `json:"since"`
		ForSeconds   float64 `json:"for_seconds"`
	}
	jsonAssignment struct {
		AssignmentID    int64            `json:"assignment_id"`
		ProjectID       string           `json:"project_id"`
		CreatedAt       string           `json:"created_at"`
		FirstSeen       string           `json:"first_seen"`
		LastEvent       string           `json:"last_event"`
		Status          string           `json:"status"`
		StatusSince     string           `json:"status_since"`
		Events          int64            `json:"events"`
		Transitions     int64            `json:"transitions"`
		Reassigned      int64            `json:"reassigned"`
		Reopened        int64            `json:"reopened"`
		Completed       bool             `json:"completed"`
		Cancelled       bool             `json:"cancelled"`
		ClosedAt        *string          `json:"closed_at"`
		TimeOpenSeconds float64          `json:"time_open_seconds"`
		TimeInStatus    []jsonStatusTime `json:"time_in_status"`
	}
	jsonStatusTime struct {
		Status  string  `json:"status"`
		Entered int64   `json:"entered"`
		Seconds float64 `json:"seconds"`
	}
)

func secondsOpt(d *time.Duration) *float64 {
	if d == nil {
		return nil
	}
	v := d.Seconds()
	return &v
}

func writeJSON(w io.Writer, r *Report) error {
	s := &r.Summary
	out := jsonReport{
		TaskID:            r.TaskID,
		AsOf:              stamp(r.AsOf),
		AsOfSource:        r.AsOfSource,
		AsOfNote:          r.AsOfNote,
		TableVersion:      r.TableVersion,
		SLASeconds:        r.SLA.Seconds(),
		StuckAfterSeconds: r.StuckAfter.Seconds(),
		Events:            r.Events,
		DuplicateEvents:   r.DuplicateEvents,
		LaterEvents:       r.LaterEvents,
		DroppedDuplicates: optInt(r.DroppedDuplicates),
		Summary: jsonSummary{
			Assignments:                 s.Assignments,
			Open:                        s.Open,
			Completed:                   s.Completed,
			Cancelled:                   s.Cancelled,
			ByStatus:                    []jsonCount{},
			MedianTimeToCompleteSeconds: secondsOpt(s.MedianTimeToComplete),
			P90TimeToCompleteSeconds:    secondsOpt(s.P90TimeToComplete),
			CompletedWithinSLA:          s.CompletedWithinSLA,
			SLAShare:                    s.SLAShare,
			OpenPastSLA:                 s.OpenPastSLA,
			Stuck:                       s.Stuck,
		},
		TimeInStatus: []jsonStatus{},
		Stuck:        []jsonStuck{},
		Assignments:  []jsonAssignment{},
	}
	for _, c := range s.ByStatus {
		out.Summary.ByStatus = append(out.Summary.ByStatus, jsonCount(c))
	}
	for _, st := range r.Statuses {
		out.TimeInStatus = append(out.TimeInStatus, jsonStatus{Status: st.Status, Assignments: st.Assignments,
			MedianSeconds: st.Median.Seconds(), P90Seconds: st.P90.Seconds(), TotalSeconds: st.Total.Seconds()})
	}
	for _, st := range r.Stuck {
		out.Stuck = append(out.Stuck, jsonStuck{AssignmentID: st.AssignmentID, ProjectID: st.ProjectID, Status: st.Status,
			Since: stamp(st.Since), ForSeconds: st.For.Seconds()})
	}
	for _, a := range r.Assignments {
		ja := jsonAssignment{
			AssignmentID: a.AssignmentID, ProjectID: a.ProjectID, CreatedAt: stamp(a.CreatedAt), FirstSeen: stamp(a.FirstSeen),
			LastEvent: stamp(a.LastEvent), Status: a.Status, StatusSince: stamp(a.StatusSince), Events: a.Events,
			Transitions: a.Transitions, Reassigned: a.Reassigned, Reopened: a.Reopened, Completed: a.Completed,
			Cancelled: a.Cancelled, TimeOpenSeconds: a.TimeOpen.Seconds(), TimeInStatus: []jsonStatusTime{},
		}
		if !a.ClosedAt.IsZero() {
			c := stamp(a.ClosedAt)
			ja.ClosedAt = &c
		}
		for _, st := range a.TimeInStatus {
			ja.TimeInStatus = append(ja.TimeInStatus, jsonStatusTime{Status: st.Status, Entered: st.Entered, Seconds: st.Time.Seconds()})
		}
		out.Assignments = append(out.Assignments, ja)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// asOfLine says where r's as-of came from, "" when it was given.
func asOfLine(r *Report) string {
	if r.AsOfSource == "" || r.AsOfSource == AsOfSourceGiven {
		return ""
	}
	line := "as of: " + r.AsOfSource
	if r.AsOfNote != "" {
		line += " (" + r.AsOfNote + ")"
	}
	return line
}

// optCount is n, or "" when it is unknown (negative).
func optCount(n int64) string {
	if n < 0 {
		return ""
	}
	return itoa(n)
}

// optInt is &n, or nil (null) when n is unknown (negative).
func optInt(n int64) *int64 {
	if n < 0 {
		return nil
	}
	return &n
}
