package sim

import "time"

// AssignmentState is a task assignment as of a moment: what an event at that
// moment should report, and what a table row describing that event should
// hold.
type AssignmentState struct {
	// AssignmentID and TaskID (the template id) identify the assignment;
	// ProjectID is its project.
	AssignmentID int64
	TaskID       int64
	ProjectID    string
	// EventType is the type of the event of the step in force.
	EventType string
	// Status and PreviousStatus are the step's status and the one before
	// it ("" for the first step).
	Status         string
	PreviousStatus string
	// AssignedTo and AssignedBy are the technician and the adjuster.
	AssignedTo int64
	AssignedBy int64
	// CreatedAt is when the assignment was created (its first step);
	// UpdatedAt when the step in force began.
	CreatedAt time.Time
	UpdatedAt time.Time
	// CompletedAt is when the task was completed, zero unless the step in
	// force is a completion (a reopened task is not completed).
	CompletedAt time.Time
}

// AssignmentAt returns the state of assignment id as of t: its last step at
// or before t. It reports false for an unknown id, and for a t before the
// assignment was created.
func (s *Sim) AssignmentAt(id int64, t time.Time) (AssignmentState, bool) {
	a := s.cur().assignmentByID(id)
	if a == nil {
		return AssignmentState{}, false
	}
	si := a.stateAt(t)
	if si < 0 {
		return AssignmentState{}, false
	}
	st := a.step(si)
	return AssignmentState{
		AssignmentID:   a.id,
		TaskID:         a.template,
		ProjectID:      s.cur().projects[a.project].id(),
		EventType:      st.eventType,
		Status:         st.status,
		PreviousStatus: st.prev,
		AssignedTo:     st.assignedTo,
		AssignedBy:     st.assignedBy,
		CreatedAt:      a.step(0).at,
		UpdatedAt:      st.at,
		CompletedAt:    st.completed,
	}, true
}
