package plugin

import (
	"time"

	"kpipe/internal/claimx"
)

// TaskState is the task assignment as of its event: the values a row
// describing the event holds. Each comes from the event's own raw_data
// wherever the event carries it; otherwise from the fetched task row only
// when the row shows the task as of the event (see Enriched.AtEvent);
// otherwise it is unknown, and says so (empty, zero, Has* false), rather
// than taking a later state.
type TaskState struct {
	// Status is the status after the event ("" when unknown).
	Status string
	// PreviousStatus is the status before it ("" when none or unknown).
	PreviousStatus string
	// AssignedTo and AssignedBy are the technician and who assigned them,
	// valid when HasAssignedTo and HasAssignedBy.
	AssignedTo, AssignedBy       int64
	HasAssignedTo, HasAssignedBy bool
	// CreatedAt is when the assignment was created; CompletedAt when the
	// task was completed, zero unless it is completed as of the event.
	CreatedAt, CompletedAt time.Time
}

// impliedStatus is the status an event type implies when raw_data carries
// none.
var impliedStatus = map[string]string{
	claimx.EventCustomTaskAssigned:  claimx.StatusAssigned,
	claimx.EventCustomTaskCompleted: claimx.StatusCompleted,
}

// EventTime returns when the event happened: raw_data's occurredAt, else
// the event's ingested_at (zero when neither is known).
func (e *Enriched) EventTime() time.Time {
	if t, ok := e.Raw.Time("occurredAt"); ok {
		return t
	}
	if e.Event != nil {
		return e.Event.IngestedAt.UTC()
	}
	return time.Time{}
}

// rowAtEvent returns the fetched task row when it shows the task as of the
// event: last updated (updated_at) at or before the event's time, so that
// nothing changed between the event and the fetch. A row updated later, or
// without updated_at, describes another moment: nil.
func (e *Enriched) rowAtEvent(at time.Time) *claimx.RawRow {
	if e.Task == nil || at.IsZero() {
		return nil
	}
	if u, ok := e.Task.Time("updated_at"); ok && !u.After(at) {
		return e.Task.RawRow
	}
	return nil
}

// AtEvent returns the task assignment as of its event, column by column:
//
//   - Status: raw_data status, else the status the event type implies
//     (CUSTOM_TASK_ASSIGNED: assigned, CUSTOM_TASK_COMPLETED: completed),
//     else the row as of the event (rowAtEvent).
//   - PreviousStatus, AssignedTo, AssignedBy: raw_data previousStatus,
//     assignedToUserId, assignedByUserId when the key is present (a null
//     previousStatus is "no previous status"), else the row as of the event.
//   - CreatedAt: raw_data createdAt, else the fetched row's created_at (an
//     assignment's creation time does not change) when it is not after the
//     event.
//   - CompletedAt: raw_data completedAt when present; else the event's time
//     when the event completes the task (status completed, from a previous
//     status other than completed, or a CUSTOM_TASK_COMPLETED event); else
//     zero when the event's status is another one; else, the event saying
//     nothing of it, the fetched row's completed_at when the row is
//     completed since at or before the event.
//
// Anything else is unknown: a later state of the task is never taken for
// the event's.
func (e *Enriched) AtEvent() TaskState {
	var s TaskState
	at := e.EventTime()
	row := e.rowAtEvent(at)
	raw := e.Raw
	typ := e.eventType()

	s.Status = e.TaskStatus()
	rawStatus, _ := raw.String("status")
	statusFromEvent := rawStatus != "" || impliedStatus[typ] != ""

	_, prevKnown := raw.Get("previousStatus")
	if prevKnown {
		s.PreviousStatus, _ = raw.String("previousStatus")
	} else {
		s.PreviousStatus, _ = row.String("previous_status")
	}

	if s.AssignedTo, s.HasAssignedTo = raw.Int64("assignedToUserId"); !s.HasAssignedTo {
		s.AssignedTo, s.HasAssignedTo = row.Int64("assigned_to_user_id")
	}
	if s.AssignedBy, s.HasAssignedBy = raw.Int64("assignedByUserId"); !s.HasAssignedBy {
		s.AssignedBy, s.HasAssignedBy = row.Int64("assigned_by_user_id")
	}

	if t, ok := raw.Time("createdAt"); ok {
		s.CreatedAt = t
	} else if e.Task != nil {
		if t, ok := e.Task.Time("created_at"); ok && !at.IsZero() && !t.After(at) {
			s.CreatedAt = t
		}
	}

	completes := s.Status == claimx.StatusCompleted && statusFromEvent &&
		((prevKnown && s.PreviousStatus != claimx.StatusCompleted) || (!prevKnown && typ == claimx.EventCustomTaskCompleted))
	switch {
	case hasKey(raw, "completedAt"):
		s.CompletedAt, _ = raw.Time("completedAt")
	case completes:
		s.CompletedAt = at
	case statusFromEvent && s.Status != claimx.StatusCompleted:
		// Not completed as of the event.
	case e.Task != nil && !at.IsZero():
		// The event does not say: the row's completion holds for the
		// event's time when the row is still completed and was completed
		// at or before it.
		r := e.Task
		if st, _ := r.String("status"); st == claimx.StatusCompleted {
			if t, ok := r.Time("completed_at"); ok && !t.After(at) {
				s.CompletedAt = t
			}
		}
	}
	return s
}

func hasKey(r claimx.Row, key string) bool {
	_, ok := r[key]
	return ok
}
