package sim

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"kpipe/internal/claimx"
)

// Template is a task template of the simulated ClaimX.
type Template struct {
	ID       int64
	Name     string
	Category string
	Fields   []FormField
}

// FormField is one field of a template's form.
type FormField struct {
	ID, Label, Type string
	Options         []string
}

// TemplateITelCabinet is the task template id of the iTel Cabinet Repair
// Form, the template the simulator's worlds favour.
const TemplateITelCabinet int64 = 32513

// DefaultTemplates are the templates of a world when Options.TaskTemplates is
// empty; the iTel Cabinet Repair Form (32513) comes first and takes about 40 %
// of the assignments.
var DefaultTemplates = []int64{TemplateITelCabinet, 24601, 18230, 30077, 27450}

var knownTemplates = map[int64]Template{
	32513: {ID: 32513, Name: "iTel Cabinet Repair Form", Category: "repair", Fields: []FormField{
		{ID: "cabinet_location", Label: "Cabinet location", Type: "select", Options: []string{"Kitchen", "Bathroom", "Laundry", "Garage"}},
		{ID: "cabinet_type", Label: "Cabinet type", Type: "select", Options: []string{"Base", "Wall", "Tall", "Vanity"}},
		{ID: "damage_type", Label: "Damage type", Type: "select", Options: []string{"Water", "Fire", "Impact", "Mold"}},
		{ID: "linear_feet", Label: "Damaged linear feet", Type: "decimal"},
		{ID: "material", Label: "Material", Type: "select", Options: []string{"Particleboard", "Plywood", "Solid wood", "MDF"}},
		{ID: "itel_sample_sent", Label: "iTel sample sent", Type: "boolean"},
		{ID: "notes", Label: "Notes", Type: "text"},
	}},
	24601: {ID: 24601, Name: "Roof Inspection Checklist", Category: "inspection", Fields: []FormField{
		{ID: "roof_type", Label: "Roof type", Type: "select", Options: []string{"Asphalt shingle", "Metal", "Tile", "Flat"}},
		{ID: "slopes_damaged", Label: "Slopes damaged", Type: "number"},
		{ID: "hail_hits_per_square", Label: "Hail hits per square", Type: "number"},
		{ID: "notes", Label: "Notes", Type: "text"},
	}},
	18230: {ID: 18230, Name: "Contents Inventory", Category: "contents", Fields: []FormField{
		{ID: "rooms", Label: "Rooms inventoried", Type: "number"},
		{ID: "items", Label: "Items listed", Type: "number"},
		{ID: "notes", Label: "Notes", Type: "text"},
	}},
	30077: {ID: 30077, Name: "Water Mitigation Log", Category: "mitigation", Fields: []FormField{
		{ID: "moisture_reading", Label: "Moisture reading (%)", Type: "decimal"},
		{ID: "dehumidifiers", Label: "Dehumidifiers placed", Type: "number"},
		{ID: "category", Label: "Water category", Type: "select", Options: []string{"1", "2", "3"}},
	}},
	27450: {ID: 27450, Name: "Policyholder Walkthrough", Category: "field", Fields: []FormField{
		{ID: "walkthrough_done", Label: "Walkthrough done", Type: "boolean"},
		{ID: "notes", Label: "Notes", Type: "text"},
	}},
}

func templateFor(id int64) Template {
	if t, ok := knownTemplates[id]; ok {
		return t
	}
	return Template{ID: id, Name: "Custom Task " + strconv.FormatInt(id, 10), Category: "custom", Fields: []FormField{
		{ID: "done", Label: "Done", Type: "boolean"},
		{ID: "notes", Label: "Notes", Type: "text"},
	}}
}

// Id layout: project i has id projectBase+i; its k-th assignment has id
// assignmentBase + i*maxAssignments + k. Lookups decode ids arithmetically.
const (
	projectBase    = 5_000_000
	assignmentBase = 1_000_000
	maxAssignments = 8
	mediaBase      = 7_000_000
	videoBase      = 300_000
	maxMedia       = 16
)

// step is one point of an assignment's lifecycle: the state from at on.
type step struct {
	at         time.Time
	eventType  string
	status     string
	prev       string // status before this one ("" for the first)
	assignedTo int64
	assignedBy int64
	completed  time.Time // completed_at as of this step (zero: null)
	event      int32     // index in world.events
}

// pstep is a step as an assignment holds it (40 bytes instead of 120):
// times in Unix milliseconds (0: none), types and statuses as indexes.
type pstep struct {
	atMS, completedMS      int64
	assignedTo, assignedBy int64
	event                  int32
	typ, status, prev      uint8 // in eventTypes, statuses, statuses
}

// statuses are the statuses a step holds, by pstep.status and prev; ""
// is a first step's previous status.
var statuses = [...]string{"", claimx.StatusAssigned, claimx.StatusInProgress, claimx.StatusCompleted, claimx.StatusReassigned, claimx.StatusReopened, claimx.StatusCancelled}

func statusIndex(s string) uint8 {
	for i, t := range statuses {
		if t == s {
			return uint8(i)
		}
	}
	panic("sim: status " + s + " is not in statuses")
}

func packStep(s step) pstep {
	p := pstep{atMS: s.at.UnixMilli(), assignedTo: s.assignedTo, assignedBy: s.assignedBy, event: s.event,
		typ: eventTypeIndex(s.eventType), status: statusIndex(s.status), prev: statusIndex(s.prev)}
	if !s.completed.IsZero() {
		p.completedMS = s.completed.UnixMilli()
	}
	return p
}

// at is when the step happened, in UTC.
func (p *pstep) at() time.Time { return msTime(p.atMS) }

// step returns a's i-th step.
func (a *assignment) step(i int) step {
	p := &a.steps[i]
	return step{at: p.at(), eventType: eventTypes[p.typ], status: statuses[p.status], prev: statuses[p.prev],
		assignedTo: p.assignedTo, assignedBy: p.assignedBy, event: p.event, completed: msTime(p.completedMS)}
}

type assignment struct {
	id       int64
	project  int32
	template int64
	priority string
	due      time.Time
	steps    []pstep // step(i) expands one
}

// media is one photo of a project, 16 bytes: its id is the project's
// (project.mediaID), its file name made from img when rendered.
type media struct {
	atMS  int64 // uploaded, in Unix milliseconds
	bytes int32
	img   int16 // the number in its file name
}

func (m *media) at() time.Time { return msTime(m.atMS) }
func (m *media) name() string  { return "IMG_" + strconv.Itoa(int(m.img)) + ".jpg" }

// project is a project as the world holds it: times in Unix milliseconds
// (0: none), the address and policyholder as indexes into the package's
// tables, and the strings derived from them (name, claim number, master
// file name, id) made when rendered (methods of the same names).
type project struct {
	idx, firstEvent int32
	createdMS       int64
	lossDateMS      int64
	mfnAtMS         int64 // 0: no master file name
	joinedAtMS      int64
	invitedAtMS     int64
	videoAtMS       int64
	videoDoneMS     int64
	adjuster        int64
	videoID         int64
	streetNo        int16 // the street's house number
	cityIdx         uint8 // in cities
	streetIdx       uint8 // in streets
	first, last     uint8 // the policyholder's, in firstNames, lastNames
	lossIdx         uint8 // in lossTypes
	media           []media
	assigns         []int32 // indices in world.assigns
}

// msTime is a time held in Unix milliseconds, in UTC; 0 is the zero time.
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// mediaID is the id of the project's k-th photo.
func (p *project) mediaID(k int) int64 { return int64(mediaBase + int(p.idx)*maxMedia + k) }

func (p *project) id() string           { return strconv.Itoa(projectBase + int(p.idx)) }
func (p *project) created() time.Time   { return msTime(p.createdMS) }
func (p *project) lossDate() time.Time  { return msTime(p.lossDateMS) }
func (p *project) mfnAt() time.Time     { return msTime(p.mfnAtMS) }
func (p *project) joinedAt() time.Time  { return msTime(p.joinedAtMS) }
func (p *project) invitedAt() time.Time { return msTime(p.invitedAtMS) }
func (p *project) videoAt() time.Time   { return msTime(p.videoAtMS) }
func (p *project) videoDone() time.Time { return msTime(p.videoDoneMS) }
func (p *project) city() string         { return cities[p.cityIdx].city }
func (p *project) state() string        { return cities[p.cityIdx].state }
func (p *project) zip() string          { return cities[p.cityIdx].zip }
func (p *project) street() string       { return strconv.Itoa(int(p.streetNo)) + " " + streets[p.streetIdx] }
func (p *project) phFirst() string      { return firstNames[p.first] }
func (p *project) phLast() string       { return lastNames[p.last] }
func (p *project) lossType() string     { return lossTypes[p.lossIdx] }
func (p *project) name() string         { return p.phLast() + " – " + p.lossType() + " loss, " + p.city() }

func (p *project) claim() string {
	return "CLM-" + strconv.Itoa(p.created().Year()) + "-" + strconv.Itoa(100000+int(p.idx))
}

// mfn is the master file name, "" when the project has none.
func (p *project) mfn() string {
	if p.mfnAtMS == 0 {
		return ""
	}
	return "MFN-" + strconv.Itoa(p.created().Year()) + "-" + strconv.Itoa(600000+int(p.idx))
}

// wevent is one event of the world timeline, compact; raw_data is rendered
// on demand.
type wevent struct {
	atMS    int64 // when, in Unix milliseconds (ClaimX's precision); at()
	project int32
	assign  int32 // index in world.assigns, -1 for project events
	seq     int32 // per project, for ordering and its id (world.eventID)
	step    int16
	media   int16 // index in project.media, -1 if none
	typ     uint8 // index in eventTypes; eventType()
}

// eventTypes are the event types a world's events have, by wevent.typ.
var eventTypes = [...]string{
	claimx.EventProjectCreated, claimx.EventProjectFileAdded, claimx.EventProjectMFNAdded,
	claimx.EventCustomTaskAssigned, claimx.EventCustomTaskUpdated, claimx.EventCustomTaskStatusChanged,
	claimx.EventCustomTaskCompleted, claimx.EventPolicyholderInvited, claimx.EventPolicyholderJoined,
	claimx.EventVideoCollaborationInviteSent, claimx.EventVideoCollaborationCompleted,
}

// eventTypeIndex is typ's index in eventTypes; it panics on a type the
// world cannot hold, which only a change of this package can make.
func eventTypeIndex(typ string) uint8 {
	for i, t := range eventTypes {
		if t == typ {
			return uint8(i)
		}
	}
	panic("sim: event type " + typ + " is not in eventTypes")
}

func (e *wevent) eventType() string { return eventTypes[e.typ] }

// at is when e happened, in UTC.
func (e *wevent) at() time.Time { return msTime(e.atMS) }

type world struct {
	seed      int64
	base      time.Time
	templates []int64
	projects  []project
	assigns   []assignment
	events    []wevent // ordered by at, then project, then seq
	end       time.Time
}

var (
	firstNames = []string{"Ana", "Ben", "Carla", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jamal", "Kira", "Luis", "Mona", "Nate", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tara"}
	lastNames  = []string{"Alvarez", "Brooks", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jones", "Kowalski", "Lopez", "Moore", "Nguyen", "Okafor", "Patel", "Reyes", "Smith", "Turner", "Walsh"}
	cities     = []struct{ city, state, zip string }{{"Tampa", "FL", "33602"}, {"Houston", "TX", "77002"}, {"Denver", "CO", "80202"}, {"Omaha", "NE", "68102"}, {"Raleigh", "NC", "27601"}, {"Tulsa", "OK", "74103"}, {"Mobile", "AL", "36602"}, {"Boise", "ID", "83702"}}
	streets    = []string{"Oak St", "Maple Ave", "Cedar Ln", "Pine Rd", "Elm Dr", "Birch Ct", "Willow Way", "Lakeview Blvd"}
	lossTypes  = []string{"Water", "Wind", "Hail", "Fire", "Theft", "Flood"}
)

func userName(id int64) (string, string) {
	return firstNames[int(id*7)%len(firstNames)], lastNames[int(id*13)%len(lastNames)]
}

// splitmix64 derives independent, deterministic streams from the seed.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func eventID(seed int64, project, seq int32) string {
	a := splitmix64(uint64(seed)*0x100000001b3 ^ uint64(project)<<20 ^ uint64(seq))
	b := splitmix64(a ^ 0x5bd1e995)
	var buf [32]byte
	const hex = "0123456789abcdef"
	for i := 0; i < 16; i++ {
		buf[i] = hex[(a>>(60-4*i))&0xF]
		buf[16+i] = hex[(b>>(60-4*i))&0xF]
	}
	return string(buf[:])
}

// eventID is e's event_id, derived rather than stored: a world of a
// million events would hold 44 MB of them.
func (w *world) eventID(e *wevent) string { return eventID(w.seed, e.project, e.seq) }

// ms rounds to milliseconds, ClaimX's timestamp precision.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }

// between returns a random duration in [lo, hi).
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

// buildWorld creates the deterministic world of the options.
func buildWorld(seed int64, n int, templates []int64, base time.Time) *world {
	w := &world{seed: seed, base: base, templates: templates}
	w.assigns = make([]assignment, 0, n*2)
	w.events = make([]wevent, 0, n*14)
	w.addProjects(n, base)
	return w
}

// grow returns a copy of w with n more projects, created from just after
// w.end on, so that the timeline goes on where it ended: Generate with
// Forever calls it when the events run out. Ids continue where w's end
// (project i keeps the ids of the layout above), so lookups of old and new
// ids both work. w itself is not changed: the copy's slices only append
// past w's lengths, which readers of w never look at.
func (w *world) grow(n int) *world {
	g := *w
	g.addProjects(n, w.end.Add(time.Millisecond))
	return &g
}

// addProjects appends n projects, the first created at about base, with
// their events, sorted among themselves after the events already there.
func (w *world) addProjects(n int, base time.Time) {
	seed, templates := w.seed, w.templates
	first := len(w.projects)
	firstEvent := len(w.events)
	w.projects = append(w.projects, make([]project, n)...)
	weight32513 := slices.Contains(templates, TemplateITelCabinet) && len(templates) > 1
	for i := first; i < first+n; i++ {
		r := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
		p := &w.projects[i]
		p.idx = int32(i)
		created := ms(base.Add(time.Duration(i-first)*90*time.Second + between(r, 0, 60*time.Second)))
		p.createdMS = created.UnixMilli()
		p.cityIdx = uint8(r.IntN(len(cities)))
		p.streetNo = int16(100 + r.IntN(9800))
		p.streetIdx = uint8(r.IntN(len(streets)))
		p.first, p.last = uint8(r.IntN(len(firstNames))), uint8(r.IntN(len(lastNames)))
		p.lossIdx = uint8(r.IntN(len(lossTypes)))
		p.lossDateMS = created.Add(-between(r, 24*time.Hour, 20*24*time.Hour)).Truncate(24 * time.Hour).UnixMilli()
		p.adjuster = 10000 + r.Int64N(50)
		seq := int32(0)
		add := func(at time.Time, typ string, assign int32, st int16, med int16) int32 {
			w.events = append(w.events, wevent{atMS: ms(at).UnixMilli(), typ: eventTypeIndex(typ), project: p.idx, assign: assign, step: st, media: med, seq: seq})
			seq++
			return int32(len(w.events) - 1)
		}
		add(created, claimx.EventProjectCreated, -1, 0, -1)
		invitedAt := ms(created.Add(between(r, 5*time.Minute, 30*time.Minute)))
		p.invitedAtMS = invitedAt.UnixMilli()
		add(invitedAt, claimx.EventPolicyholderInvited, -1, 0, -1)
		if r.Float64() < 0.7 {
			joinedAt := ms(invitedAt.Add(between(r, 10*time.Minute, 48*time.Hour)))
			p.joinedAtMS = joinedAt.UnixMilli()
			add(joinedAt, claimx.EventPolicyholderJoined, -1, 0, -1)
		}
		if r.Float64() < 0.6 {
			mfnAt := ms(created.Add(between(r, time.Minute, time.Hour)))
			p.mfnAtMS = mfnAt.UnixMilli()
			add(mfnAt, claimx.EventProjectMFNAdded, -1, 0, -1)
		}
		nm := 1 + r.IntN(4)
		for k := range nm {
			at := ms(created.Add(between(r, time.Hour, 5*24*time.Hour)))
			m := media{atMS: at.UnixMilli(), bytes: int32(200_000 + r.Int64N(6_000_000))}
			m.img = int16(1000 + r.IntN(9000))
			p.media = append(p.media, m)
			add(at, claimx.EventProjectFileAdded, -1, 0, int16(k))
		}
		if r.Float64() < 0.4 {
			p.videoID = int64(videoBase + i)
			videoAt := ms(created.Add(between(r, 2*time.Hour, 3*24*time.Hour)))
			p.videoAtMS = videoAt.UnixMilli()
			add(videoAt, claimx.EventVideoCollaborationInviteSent, -1, 0, -1)
			if r.Float64() < 0.8 {
				videoDone := ms(videoAt.Add(between(r, 30*time.Minute, 24*time.Hour)))
				p.videoDoneMS = videoDone.UnixMilli()
				add(videoDone, claimx.EventVideoCollaborationCompleted, -1, 0, -1)
			}
		}
		na := 1 + r.IntN(3)
		for k := range na {
			tpl := templates[r.IntN(len(templates))]
			if weight32513 {
				if r.Float64() < 0.4 {
					tpl = TemplateITelCabinet
				} else {
					for tpl == TemplateITelCabinet {
						tpl = templates[r.IntN(len(templates))]
					}
				}
			}
			a := assignment{id: int64(assignmentBase + i*maxAssignments + k), project: p.idx, template: tpl, priority: "normal"}
			if r.Float64() < 0.2 {
				a.priority = "high"
			}
			ai := int32(len(w.assigns))
			start := ms(created.Add(between(r, 10*time.Minute, 48*time.Hour)))
			a.due = start.Add(time.Duration(3+r.IntN(10)) * 24 * time.Hour).Truncate(24 * time.Hour)
			lifecycle(r, &a, start, p.adjuster)
			a.steps = exact(a.steps)
			for si := range a.steps {
				a.steps[si].event = add(a.steps[si].at(), eventTypes[a.steps[si].typ], ai, int16(si), -1)
			}
			w.assigns = append(w.assigns, a)
			p.assigns = append(p.assigns, ai)
		}
		p.media, p.assigns = exact(p.media), exact(p.assigns)
	}
	// The world is kept for the whole run: drop what appending left spare
	// (up to half of each slice). A world that grows appends to copies.
	w.events, w.assigns = exact(w.events), exact(w.assigns)
	slices.SortStableFunc(w.events[firstEvent:], func(a, b wevent) int {
		if a.atMS != b.atMS {
			return cmp.Compare(a.atMS, b.atMS)
		}
		if a.project != b.project {
			return int(a.project - b.project)
		}
		return int(a.seq - b.seq)
	})
	for i := firstEvent; i < len(w.events); i++ {
		e := &w.events[i]
		if e.assign >= 0 {
			w.assigns[e.assign].steps[e.step].event = int32(i)
		}
		if e.seq == 0 {
			w.projects[e.project].firstEvent = int32(i)
		}
	}
	if len(w.events) > 0 {
		w.end = w.events[len(w.events)-1].at()
	} else {
		w.end = base
	}
}

// exact returns s in an array of its length: a copy when appending left
// spare capacity.
func exact[S ~[]E, E any](s S) S {
	if cap(s) == len(s) {
		return s
	}
	return append(make(S, 0, len(s)), s...)
}

// transitions is the lifecycle state machine: the statuses that may follow
// each status. Tests check every generated lifecycle against it.
var transitions = map[string][]string{
	claimx.StatusAssigned:   {claimx.StatusInProgress, claimx.StatusReassigned, claimx.StatusCancelled},
	claimx.StatusReassigned: {claimx.StatusInProgress, claimx.StatusCancelled},
	claimx.StatusInProgress: {claimx.StatusCompleted, claimx.StatusReassigned, claimx.StatusCancelled},
	claimx.StatusCompleted:  {claimx.StatusReopened},
	claimx.StatusReopened:   {claimx.StatusInProgress},
	claimx.StatusCancelled:  nil,
}

// ValidTransition reports whether a lifecycle may go from one status to the
// next ("" → assigned starts every lifecycle).
func ValidTransition(from, to string) bool {
	if from == "" {
		return to == claimx.StatusAssigned
	}
	return slices.Contains(transitions[from], to)
}

// lifecycle fills a.steps: assigned, then status changes and updates until
// the task is completed, cancelled or left open.
func lifecycle(r *rand.Rand, a *assignment, start time.Time, adjuster int64) {
	tech := 20000 + r.Int64N(500)
	at := start
	cur := step{at: at, eventType: claimx.EventCustomTaskAssigned, status: claimx.StatusAssigned, assignedTo: tech, assignedBy: adjuster}
	a.steps = append(a.steps, packStep(cur))
	gap := func() time.Duration {
		return between(r, 5*time.Minute, 6*time.Hour) + time.Duration(r.ExpFloat64()*float64(12*time.Hour))
	}
	for len(a.steps) < 14 {
		open := cur.status != claimx.StatusCompleted && cur.status != claimx.StatusCancelled
		if open && r.Float64() < 0.3 { // a form or detail update without a status change
			cur.at = ms(cur.at.Add(gap()))
			cur.eventType = claimx.EventCustomTaskUpdated
			a.steps = append(a.steps, packStep(cur))
		}
		next := ""
		x := r.Float64()
		switch cur.status {
		case claimx.StatusAssigned:
			switch {
			case x < 0.78:
				next = claimx.StatusInProgress
			case x < 0.90:
				next = claimx.StatusReassigned
			case x < 0.95:
				next = claimx.StatusCancelled
			}
		case claimx.StatusReassigned:
			if x < 0.88 {
				next = claimx.StatusInProgress
			} else if x < 0.95 {
				next = claimx.StatusCancelled
			}
		case claimx.StatusInProgress:
			switch {
			case x < 0.75:
				next = claimx.StatusCompleted
			case x < 0.85:
				next = claimx.StatusReassigned
			case x < 0.90:
				next = claimx.StatusCancelled
			}
		case claimx.StatusCompleted:
			if x < 0.12 {
				next = claimx.StatusReopened
			}
		case claimx.StatusReopened:
			next = claimx.StatusInProgress
		}
		if next == "" {
			return // completed, cancelled, or left open
		}
		cur.at = ms(cur.at.Add(gap()))
		cur.prev, cur.status = cur.status, next
		cur.eventType = claimx.EventCustomTaskStatusChanged
		switch next {
		case claimx.StatusCompleted:
			cur.eventType = claimx.EventCustomTaskCompleted
			cur.completed = cur.at
		case claimx.StatusReopened:
			cur.completed = time.Time{}
		case claimx.StatusReassigned:
			for t := cur.assignedTo; t == cur.assignedTo; {
				cur.assignedTo = 20000 + r.Int64N(500)
			}
			cur.assignedBy = adjuster
		}
		a.steps = append(a.steps, packStep(cur))
	}
}

// stateAt returns the index of the step in force at t, or -1 before the
// assignment exists.
func (a *assignment) stateAt(t time.Time) int {
	i, found := slices.BinarySearchFunc(a.steps, t, func(s pstep, t time.Time) int { return s.at().Compare(t) })
	if found {
		for i+1 < len(a.steps) && !a.steps[i+1].at().After(t) {
			i++
		}
		return i
	}
	return i - 1
}

// assignmentByID decodes an assignment id.
func (w *world) assignmentByID(id int64) *assignment {
	off := id - assignmentBase
	if off < 0 {
		return nil
	}
	pi, k := off/maxAssignments, off%maxAssignments
	if pi >= int64(len(w.projects)) {
		return nil
	}
	p := &w.projects[pi]
	if k >= int64(len(p.assigns)) {
		return nil
	}
	return &w.assigns[p.assigns[k]]
}

func (w *world) projectByID(id string) *project {
	n, err := strconv.Atoi(id)
	if err != nil || n < projectBase || n-projectBase >= len(w.projects) {
		return nil
	}
	return &w.projects[n-projectBase]
}
