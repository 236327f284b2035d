package report

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"kpipe/internal/query"
)

// FormatHTML is the report as one self-contained HTML page.
const FormatHTML query.Format = "html"

//go:embed report.html
var reportHTML string

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"human":    human,
	"humanOpt": humanOpt,
	"stamp":    stamp,
	"pct": func(p *float64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatFloat(*p*100, 'f', 1, 64) + "%"
	},
	"color": statusColor,
}).Parse(reportHTML))

// htmlPage is what report.html is executed with.
type htmlPage struct {
	R             *Report
	Funnel        template.HTML
	Distributions template.HTML
	Breaches      template.HTML
	BreachDays    int
	StuckChart    template.HTML
	Data          template.JS
}

// WriteHTML writes r as one HTML page that needs nothing else: CSS and
// script inline, charts as inline SVG (status funnel, time-in-status
// distributions, SLA breaches by day, stuck assignments) and a timeline of
// each assignment, drawn when its id is clicked or the page is opened at
// its anchor (#a-<assignment_id>). The timelines need a Report built with
// Options.Timelines; without, the page says so.
func WriteHTML(w io.Writer, r *Report) error {
	data, err := timelineData(r)
	if err != nil {
		return err
	}
	breaches := SLABreaches(r)
	p := htmlPage{
		R:             r,
		Funnel:        funnelSVG(Funnel(r), r.Summary.Assignments),
		Distributions: distributionsSVG(Distributions(r)),
		Breaches:      breachesSVG(breaches),
		BreachDays:    len(breaches),
		StuckChart:    stuckSVG(r.Stuck),
		Data:          template.JS(data),
	}
	return reportTmpl.Execute(w, p)
}

// timelineData is the JSON the page's script draws timelines from: per
// assignment its created and closed times and its rows ([time, status,
// changed, seconds lasted or null]).
func timelineData(r *Report) ([]byte, error) {
	type row [4]any
	type asg struct {
		Project string `json:"project"`
		Status  string `json:"status"`
		Created string `json:"created"`
		Closed  string `json:"closed,omitempty"`
		Rows    []row  `json:"rows"`
	}
	out := struct {
		AsOf        string            `json:"as_of"`
		Timelines   bool              `json:"timelines"`
		Assignments map[string]asg    `json:"assignments"`
		Colors      map[string]string `json:"colors"`
	}{AsOf: stamp(r.AsOf), Assignments: make(map[string]asg, len(r.Assignments)), Colors: map[string]string{}}
	for i := range r.Assignments {
		a := &r.Assignments[i]
		if a.History != nil {
			out.Timelines = true
		}
		x := asg{Project: a.ProjectID, Status: a.Status, Created: stamp(a.CreatedAt), Closed: stamp(a.ClosedAt), Rows: make([]row, 0, len(a.History))}
		for _, c := range a.History {
			var lasted any
			if c.Lasted != nil {
				lasted = c.Lasted.Seconds()
			}
			x.Rows = append(x.Rows, row{stamp(c.Time), c.Status, c.Changed, lasted})
			out.Colors[c.Status] = statusColor(c.Status)
		}
		out.Colors[a.Status] = statusColor(a.Status)
		out.Assignments[strconv.FormatInt(a.AssignmentID, 10)] = x
	}
	// encoding/json escapes <, > and &, so the JSON cannot end the script.
	return json.Marshal(out)
}

// statusColors are the colors of the known statuses; others get one of
// otherColors by a hash of the name.
var (
	statusColors = map[string]string{
		"assigned": "#4c78a8", "in_progress": "#f2a541", "reassigned": "#9c6ade", "reopened": "#e45756",
		"completed": "#2e9e6a", "cancelled": "#8c8c8c",
	}
	otherColors = []string{"#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac", "#54a24b"}
)

func statusColor(s string) string {
	if c, ok := statusColors[s]; ok {
		return c
	}
	h := fnv.New32a()
	h.Write([]byte(s))
	return otherColors[h.Sum32()%uint32(len(otherColors))]
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// funnelSVG draws a horizontal bar per status: the assignments that
// reached it, as a share of all.
func funnelSVG(steps []FunnelStep, total int64) template.HTML {
	if len(steps) == 0 {
		return `<p class="empty">no assignments</p>`
	}
	const w, rowH, labelW = 640, 30, 120
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" id="funnel-chart" viewBox="0 0 %d %d" role="img" aria-label="status funnel">`, w, rowH*len(steps)+6)
	barMax := float64(w - labelW - 110)
	for i, s := range steps {
		y := i*rowH + 3
		share := 0.0
		if total > 0 {
			share = float64(s.Assignments) / float64(total)
		}
		bw := math.Max(2, barMax*share)
		fmt.Fprintf(&b, `<g class="funnel-step" data-status="%s" data-count="%d">`, esc(s.Status), s.Assignments)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" class="label">%s</text>`, labelW-8, y+18, esc(s.Status))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" rx="3" fill="%s"><title>%s: %d of %d assignments</title></rect>`,
			labelW, y+2, bw, rowH-8, statusColor(s.Status), esc(s.Status), s.Assignments, total)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="value">%d (%.0f%%)</text>`, float64(labelW)+bw+6, y+18, s.Assignments, share*100)
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// distributionsSVG draws one small bar chart per status: assignments by
// total time in the status.
func distributionsSVG(ds []Distribution) template.HTML {
	if len(ds) == 0 {
		return `<p class="empty">no time in status recorded</p>`
	}
	const cw, ch, pad = 300, 150, 22
	var b strings.Builder
	b.WriteString(`<div class="multiples">`)
	for _, d := range ds {
		var top int64 = 1
		for _, k := range d.Buckets {
			top = max(top, k.Assignments)
		}
		fmt.Fprintf(&b, `<figure class="dist" data-status="%s"><figcaption><span class="swatch" style="background:%s"></span>%s</figcaption>`,
			esc(d.Status), statusColor(d.Status), esc(d.Status))
		fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="time in %s">`, cw, ch, esc(d.Status))
		n := len(d.Buckets)
		slot := float64(cw-8) / float64(n)
		plotH := float64(ch - 2*pad)
		for i, k := range d.Buckets {
			x := 4 + float64(i)*slot
			bh := plotH * float64(k.Assignments) / float64(top)
			y := float64(pad) + plotH - bh
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" data-count="%d"><title>%s: %d assignments</title></rect>`,
				x+3, y, slot-6, math.Max(bh, 0.5), statusColor(d.Status), k.Assignments, esc(k.Label), k.Assignments)
			if k.Assignments > 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" class="value">%d</text>`, x+slot/2, y-4, k.Assignments)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" class="tick">%s</text>`, x+slot/2, ch-6, esc(k.Label))
		}
		b.WriteString(`</svg></figure>`)
	}
	b.WriteString(`</div>`)
	return template.HTML(b.String())
}

// breachesSVG draws the SLA breaches per day, stacked: completed late,
// still open.
func breachesSVG(days []BreachDay) template.HTML {
	if len(days) == 0 {
		return `<p class="empty">no SLA breaches</p>`
	}
	const w, h, left, bottom, top = 720, 200, 36, 28, 12
	var most int64 = 1
	for _, d := range days {
		most = max(most, d.CompletedLate+d.StillOpen)
	}
	first, last := days[0].Day, days[len(days)-1].Day
	span := int(last.Sub(first)/(24*time.Hour)) + 1
	slot := float64(w-left-8) / float64(span)
	plotH := float64(h - top - bottom)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" id="breach-chart" viewBox="0 0 %d %d" role="img" aria-label="SLA breaches by day">`, w, h)
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="axis"/>`, left, float64(top)+plotH, w-4, float64(top)+plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" class="tick">%d</text><text x="%d" y="%.1f" text-anchor="end" class="tick">0</text>`,
		left-4, top+4, most, left-4, float64(top)+plotH)
	labelEvery := max(1, span/8)
	for _, d := range days {
		i := int(d.Day.Sub(first) / (24 * time.Hour))
		x := float64(left) + float64(i)*slot
		bw := math.Min(math.Max(1, slot-2), 48)
		x += (slot - 2 - bw) / 2
		hl := plotH * float64(d.CompletedLate) / float64(most)
		ho := plotH * float64(d.StillOpen) / float64(most)
		base := float64(top) + plotH
		day := d.Day.Format(time.DateOnly)
		fmt.Fprintf(&b, `<g class="breach-day" data-day="%s" data-late="%d" data-open="%d"><title>%s: %d completed late, %d still open</title>`,
			day, d.CompletedLate, d.StillOpen, day, d.CompletedLate, d.StillOpen)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#f2a541"/>`, x+1, base-hl, bw, hl)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#e45756"/>`, x+1, base-hl-ho, bw, ho)
		b.WriteString(`</g>`)
	}
	for i := 0; i < span; i += labelEvery {
		x := float64(left) + float64(i)*slot + slot/2
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" class="tick">%s</text>`, x, h-8, first.AddDate(0, 0, i).Format("01-02"))
	}
	b.WriteString(`</svg>`)
	b.WriteString(`<p class="legend"><span class="swatch" style="background:#f2a541"></span>completed late <span class="swatch" style="background:#e45756"></span>still open past the SLA</p>`)
	return template.HTML(b.String())
}

// stuckSVG draws the stuck assignments' time in their status, longest
// first, each bar linking to the assignment's timeline.
func stuckSVG(st []Stuck) template.HTML {
	if len(st) == 0 {
		return `<p class="empty">no stuck assignments</p>`
	}
	const w, rowH, labelW = 640, 22, 150
	longest := st[0].For
	for _, s := range st {
		longest = max(longest, s.For)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" id="stuck-chart" viewBox="0 0 %d %d" role="img" aria-label="stuck assignments">`, w, rowH*len(st)+4)
	barMax := float64(w - labelW - 180)
	for i, s := range st {
		y := i*rowH + 2
		bw := math.Max(2, barMax*float64(s.For)/float64(max(longest, 1)))
		fmt.Fprintf(&b, `<a href="#a-%d"><g class="stuck-bar" data-assignment="%d">`, s.AssignmentID, s.AssignmentID)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" class="label link">%d</text>`, labelW-8, y+15, s.AssignmentID)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" rx="2" fill="%s"><title>%d: %s since %s (%s)</title></rect>`,
			labelW, y+3, bw, rowH-6, statusColor(s.Status), s.AssignmentID, esc(s.Status), stamp(s.Since), human(s.For))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="value">%s %s</text>`, float64(labelW)+bw+6, y+15, esc(s.Status), human(s.For))
		b.WriteString(`</g></a>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
