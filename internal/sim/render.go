package sim

import (
	"strconv"
	"time"

	"kpipe/internal/claimx"
)

// renderAssignment writes the task-assignment row as of step si.
func (w *world) renderAssignment(dst []byte, a *assignment, si int, full bool) []byte {
	p := &w.projects[a.project]
	st := a.step(si)
	tpl := templateFor(a.template)
	o := jw{b: dst}
	o.open()
	o.fi("assignment_id", a.id)
	o.fi("task_id", a.template)
	o.fs("task_name", tpl.Name)
	o.fs("project_id", p.id())
	o.fs("status", st.status)
	o.key("previous_status").optStr(st.prev)
	o.fi("assigned_to_user_id", st.assignedTo)
	o.fi("assigned_by_user_id", st.assignedBy)
	first, last := userName(st.assignedTo)
	o.key("assigned_to").open().fi("user_id", st.assignedTo).fs("first_name", first).fs("last_name", last).
		fs("email", lower(first)+"."+lower(last)+"@fieldtech.example").fs("role", "field_technician").close()
	o.ft("created_at", a.step(0).at)
	o.ft("updated_at", st.at)
	o.ft("completed_at", st.completed)
	o.ft("due_date", a.due)
	o.fs("priority", a.priority)
	reassigned := 0
	for i := 1; i <= si; i++ {
		if a.step(i).status == claimx.StatusReassigned && a.step(i).eventType != claimx.EventCustomTaskUpdated {
			reassigned++
		}
	}
	o.fi("reassignment_count", int64(reassigned))
	o.key("custom_task").open().fi("id", tpl.ID).fs("name", tpl.Name).fs("category", tpl.Category).fi("version", w.templateVersion(st.at)).close()
	o.key("external_link").open().fs("url", "https://claimx.example/tasks/"+strconv.FormatInt(a.id, 10)).fs("type", "claimx_web").close()
	if full {
		o.key("form_response")
		w.renderForm(&o, a, si, tpl)
		o.key("status_history").openA()
		for i := 0; i <= si; i++ {
			s := a.step(i)
			if s.eventType == claimx.EventCustomTaskUpdated {
				continue
			}
			o.open().fs("status", s.status).key("previous_status").optStr(s.prev).ft("changed_at", s.at).fi("changed_by_user_id", s.assignedBy).close()
		}
		o.closeA()
	}
	o.close()
	return o.b
}

// renderForm writes the form response: null until work starts, then the
// answered fields grow with each step.
func (w *world) renderForm(o *jw, a *assignment, si int, tpl Template) {
	if si == 0 {
		o.null()
		return
	}
	h := splitmix64(uint64(a.id) ^ uint64(w.seed))
	answered := min(len(tpl.Fields), 1+si*len(tpl.Fields)/max(len(a.steps)-1, 1))
	st := a.step(si)
	o.open()
	o.fs("form_id", "form-"+strconv.FormatInt(tpl.ID, 10))
	o.fi("form_version", w.templateVersion(a.step(0).at))
	o.key("submitted").bool(st.status == claimx.StatusCompleted)
	o.key("submitted_at").time(st.completed)
	o.key("answers").open()
	for i, f := range tpl.Fields[:answered] {
		v := splitmix64(h + uint64(i))
		o.key(f.ID)
		switch f.Type {
		case "select":
			o.str(f.Options[v%uint64(len(f.Options))])
		case "decimal":
			o.flt(float64(v%400) / 4)
		case "number":
			o.int(int64(v % 40))
		case "boolean":
			o.bool(v%2 == 0)
		default:
			o.str("Checked on site; see photos " + strconv.FormatUint(v%1000, 10) + ".")
		}
	}
	o.close()
	p := &w.projects[a.project]
	o.key("photos").openA()
	for k := range p.media {
		if m := &p.media[k]; !m.at().After(st.at) {
			o.open().fi("media_id", p.mediaID(k)).fs("file_name", m.name()).close()
		}
	}
	o.closeA()
	o.close()
}

// templateVersion: templates get a new version every 9 days after the base
// time, so the template endpoint changes rarely but does change.
func (w *world) templateVersion(t time.Time) int64 {
	d := t.Sub(w.base)
	if d < 0 {
		return 3
	}
	return 3 + int64(d/(9*24*time.Hour))
}

// renderTemplate writes GET /api/v1/tasks/{task_id}: the task template.
func (w *world) renderTemplate(dst []byte, tpl Template, now time.Time) []byte {
	v := w.templateVersion(now)
	updated := w.base.Add(-30 * 24 * time.Hour)
	if v > 3 {
		updated = w.base.Add(time.Duration(v-3) * 9 * 24 * time.Hour)
	}
	o := jw{b: dst}
	o.open()
	o.fi("id", tpl.ID)
	o.fi("task_id", tpl.ID)
	o.fs("name", tpl.Name)
	o.fs("description", tpl.Name+" completed by the assigned field technician.")
	o.fs("category", tpl.Category)
	o.fs("status", "active")
	o.fi("version", v)
	o.ft("created_at", time.Date(2024, 3, 11, 14, 0, 0, 0, time.UTC))
	o.ft("updated_at", updated)
	o.key("form").open().fs("form_id", "form-"+strconv.FormatInt(tpl.ID, 10)).fi("version", v)
	o.key("sections").openA().open().fs("id", "main").fs("title", tpl.Name).key("fields").openA()
	for i, f := range tpl.Fields {
		o.open().fs("id", f.ID).fs("label", f.Label).fs("type", f.Type).key("required").bool(i < 3)
		if len(f.Options) > 0 {
			o.key("options").openA()
			for _, op := range f.Options {
				o.str(op)
			}
			o.closeA()
		}
		o.close()
	}
	o.closeA().close().closeA().close()
	o.key("settings").open().key("requires_photos").bool(tpl.ID == TemplateITelCabinet).fi("default_due_days", 7).close()
	o.close()
	return o.b
}

func (w *world) projectStatus(p *project, now time.Time) string {
	open := false
	for _, ai := range p.assigns {
		a := &w.assigns[ai]
		si := a.stateAt(now)
		if si < 0 {
			open = true
			continue
		}
		if s := a.step(si).status; s != claimx.StatusCompleted && s != claimx.StatusCancelled {
			open = true
		}
	}
	if open {
		return "open"
	}
	return "closed"
}

func (w *world) renderProjectBody(o *jw, p *project, now time.Time) {
	o.fs("project_id", p.id())
	o.fs("name", p.name())
	o.fs("claim_number", p.claim())
	o.fs("status", w.projectStatus(p, now))
	o.fs("loss_type", p.lossType())
	o.ft("date_of_loss", p.lossDate())
	o.ft("created_at", p.created())
	updated := p.created()
	for _, ai := range p.assigns {
		a := &w.assigns[ai]
		if si := a.stateAt(now); si >= 0 && a.step(si).at.After(updated) {
			updated = a.step(si).at
		}
	}
	o.ft("updated_at", updated)
	o.fi("adjuster_user_id", p.adjuster)
	o.key("master_file_name")
	if p.mfnAtMS != 0 && !p.mfnAt().After(now) {
		o.str(p.mfn())
	} else {
		o.null()
	}
	o.key("address").open().fs("street", p.street()).fs("city", p.city()).fs("state", p.state()).fs("postal_code", p.zip()).fs("country", "US").close()
	o.key("policyholder").open().fs("first_name", p.phFirst()).fs("last_name", p.phLast()).
		fs("email", lower(p.phFirst())+"."+lower(p.phLast())+"@mail.example").
		key("invited_at").time(timeIf(p.invitedAt(), now)).key("joined_at").time(timeIf(p.joinedAt(), now)).close()
}

// renderProject writes GET /api/v1/projects/{project_id}.
func (w *world) renderProject(dst []byte, p *project, now time.Time) []byte {
	o := jw{b: dst}
	o.open()
	w.renderProjectBody(&o, p, now)
	o.close()
	return o.b
}

// renderExport writes GET /export/project/{projectId}: the project with its
// media, video collaborations and task summaries as of now.
func (w *world) renderExport(dst []byte, p *project, now time.Time) []byte {
	o := jw{b: dst}
	o.open()
	o.key("project").open()
	w.renderProjectBody(&o, p, now)
	o.close()
	o.key("contacts").openA()
	af, al := userName(p.adjuster)
	o.open().fi("user_id", p.adjuster).fs("role", "adjuster").fs("first_name", af).fs("last_name", al).close()
	o.open().key("user_id").null().fs("role", "policyholder").fs("first_name", p.phFirst()).fs("last_name", p.phLast()).close()
	o.closeA()
	o.key("media").openA()
	for k := range p.media {
		if m := &p.media[k]; !m.at().After(now) {
			o.open().fi("media_id", p.mediaID(k)).fs("file_name", m.name()).fs("content_type", "image/jpeg").fi("size_bytes", int64(m.bytes)).ft("uploaded_at", m.at()).close()
		}
	}
	o.closeA()
	o.key("video_collaborations").openA()
	if p.videoID != 0 && !p.videoAt().After(now) {
		status := "invited"
		if !p.videoDone().IsZero() && !p.videoDone().After(now) {
			status = "completed"
		}
		o.open().fi("video_collaboration_id", p.videoID).fs("status", status).ft("invited_at", p.videoAt()).key("completed_at").time(timeIf(p.videoDone(), now)).close()
	}
	o.closeA()
	o.key("tasks").openA()
	for _, ai := range p.assigns {
		a := &w.assigns[ai]
		si := a.stateAt(now)
		if si < 0 {
			continue
		}
		s := a.step(si)
		o.open().fi("assignment_id", a.id).fi("task_id", a.template).fs("task_name", templateFor(a.template).Name).
			fs("status", s.status).fi("assigned_to_user_id", s.assignedTo).ft("updated_at", s.at).close()
	}
	o.closeA()
	o.ft("exported_at", now)
	o.close()
	return o.b
}

// renderRaw writes an event's raw_data object.
func (w *world) renderRaw(dst []byte, e *wevent) []byte {
	p := &w.projects[e.project]
	o := jw{b: dst}
	o.open()
	o.fs("eventType", e.eventType())
	o.fi("projectId", int64(projectBase)+int64(e.project))
	o.ft("occurredAt", e.at())
	switch {
	case e.assign >= 0:
		a := &w.assigns[e.assign]
		s := a.step(int(e.step))
		o.fi("taskAssignmentId", a.id)
		o.fi("customTaskId", a.template)
		o.fs("customTaskName", templateFor(a.template).Name)
		o.fs("status", s.status)
		o.key("previousStatus").optStr(s.prev)
		o.fi("assignedToUserId", s.assignedTo)
		o.fi("assignedByUserId", s.assignedBy)
		o.key("actor").open().fi("userId", s.assignedBy).fs("role", "adjuster").close()
	case e.eventType() == claimx.EventProjectCreated:
		o.fs("claimNumber", p.claim())
		o.fs("lossType", p.lossType())
		o.key("address").open().fs("city", p.city()).fs("state", p.state()).close()
		o.key("actor").open().fi("userId", p.adjuster).fs("role", "adjuster").close()
	case e.eventType() == claimx.EventProjectFileAdded:
		m := &p.media[e.media]
		o.fi("mediaId", p.mediaID(int(e.media)))
		o.fs("fileName", m.name())
		o.fs("contentType", "image/jpeg")
		o.fi("sizeBytes", int64(m.bytes))
	case e.eventType() == claimx.EventProjectMFNAdded:
		o.fs("masterFileName", p.mfn())
	case e.eventType() == claimx.EventPolicyholderInvited || e.eventType() == claimx.EventPolicyholderJoined:
		o.key("policyholder").open().fs("firstName", p.phFirst()).fs("lastName", p.phLast()).close()
	default: // video collaboration
		o.fi("videoCollaborationId", p.videoID)
	}
	o.close()
	return o.b
}

// event converts a world event to its claimx form (raw_data rendered).
func (w *world) event(e *wevent, buf []byte) (claimx.Event, []byte) {
	p := &w.projects[e.project]
	ev := claimx.Event{EventID: w.eventID(e), EventType: e.eventType(), ProjectID: p.id(), IngestedAt: e.at()}
	switch {
	case e.assign >= 0:
		ev.TaskAssignmentID = claimx.SomeID(w.assigns[e.assign].id)
	case e.eventType() == claimx.EventProjectFileAdded:
		ev.MediaID = claimx.SomeID(p.mediaID(int(e.media)))
	case e.eventType() == claimx.EventProjectMFNAdded:
		ev.MasterFileName = p.mfn()
	case e.eventType() == claimx.EventVideoCollaborationInviteSent || e.eventType() == claimx.EventVideoCollaborationCompleted:
		ev.VideoCollaborationID = claimx.SomeID(p.videoID)
	}
	start := len(buf)
	buf = w.renderRaw(buf, e)
	ev.RawData = buf[start:len(buf):len(buf)]
	return ev, buf
}

func timeIf(t, now time.Time) time.Time {
	if t.IsZero() || t.After(now) {
		return time.Time{}
	}
	return t
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
