package report

import (
	"sort"
	"time"
)

// The figures the HTML page draws and the CSV sections of the same names
// hold, derived from a built Report.

// FunnelStep is how many assignments ever reached a status.
type FunnelStep struct {
	Status      string
	Assignments int64
}

// Funnel counts, per status, the assignments that were ever in it (their
// time in status or their current status), in lifecycle order.
func Funnel(r *Report) []FunnelStep {
	count := map[string]int64{}
	for i := range r.Assignments {
		a := &r.Assignments[i]
		seen := map[string]bool{a.Status: true}
		for _, st := range a.TimeInStatus {
			seen[st.Status] = true
		}
		for s := range seen {
			count[s]++
		}
	}
	out := make([]FunnelStep, 0, len(count))
	for s, n := range count {
		out = append(out, FunnelStep{Status: s, Assignments: n})
	}
	sort.Slice(out, func(i, j int) bool { return statusLess(out[i].Status, out[j].Status) })
	return out
}

// lifecycle is the order statuses are shown in; others follow by name.
var lifecycle = map[string]int{"assigned": 0, "in_progress": 1, "reassigned": 2, "reopened": 3, "completed": 4, "cancelled": 5}

func statusLess(a, b string) bool {
	ia, oka := lifecycle[a]
	ib, okb := lifecycle[b]
	switch {
	case oka && okb:
		return ia < ib
	case oka != okb:
		return oka
	}
	return a < b
}

// Bucket is one bar of a time-in-status distribution: the assignments
// whose total time in the status is at least From and under To (To zero:
// no upper bound).
type Bucket struct {
	From, To    time.Duration
	Label       string
	Assignments int64
}

// Distribution is the time-in-status distribution of one status.
type Distribution struct {
	Status  string
	Buckets []Bucket
}

// distributionEdges are the buckets' lower bounds.
var distributionEdges = []struct {
	from  time.Duration
	label string
}{
	{0, "< 1h"}, {time.Hour, "1–6h"}, {6 * time.Hour, "6–24h"}, {24 * time.Hour, "1–3d"},
	{72 * time.Hour, "3–7d"}, {7 * 24 * time.Hour, "7–30d"}, {30 * 24 * time.Hour, "≥ 30d"},
}

// Distributions buckets, per status (in lifecycle order), each
// assignment's total time in it.
func Distributions(r *Report) []Distribution {
	per := map[string][]int64{}
	for i := range r.Assignments {
		for _, st := range r.Assignments[i].TimeInStatus {
			b := per[st.Status]
			if b == nil {
				b = make([]int64, len(distributionEdges))
				per[st.Status] = b
			}
			k := len(distributionEdges) - 1
			for k > 0 && st.Time < distributionEdges[k].from {
				k--
			}
			b[k]++
		}
	}
	out := make([]Distribution, 0, len(per))
	for s, counts := range per {
		d := Distribution{Status: s}
		for k, e := range distributionEdges {
			b := Bucket{From: e.from, Label: e.label, Assignments: counts[k]}
			if k+1 < len(distributionEdges) {
				b.To = distributionEdges[k+1].from
			}
			d.Buckets = append(d.Buckets, b)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return statusLess(out[i].Status, out[j].Status) })
	return out
}

// BreachDay counts the SLA breaches of one UTC day: assignments whose
// time open passed the SLA that day (created + SLA), split into those
// completed late and those still open at AsOf. Cancelled assignments are
// not counted, as in the summary.
type BreachDay struct {
	Day           time.Time
	CompletedLate int64
	StillOpen     int64
}

// SLABreaches lists the days with breaches, oldest first.
func SLABreaches(r *Report) []BreachDay {
	days := map[time.Time]*BreachDay{}
	for i := range r.Assignments {
		a := &r.Assignments[i]
		if a.Cancelled || a.TimeOpen <= r.SLA {
			continue
		}
		at := a.CreatedAt.Add(r.SLA).UTC()
		day := time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
		d := days[day]
		if d == nil {
			d = &BreachDay{Day: day}
			days[day] = d
		}
		if a.Completed {
			d.CompletedLate++
		} else {
			d.StillOpen++
		}
	}
	out := make([]BreachDay, 0, len(days))
	for _, d := range days {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Day.Before(out[j].Day) })
	return out
}
