package sim

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"kpipe/internal/claimx"
)

// TestAssignmentAt: the state at each task event's time is what the event's
// raw_data says and what the API serves for the assignment at that time;
// before the assignment exists, and for an unknown id, there is none.
func TestAssignmentAt(t *testing.T) {
	s := New(Options{Seed: 3, Projects: 30})
	srv := httptest.NewServer(s)
	defer srv.Close()
	checked := 0
	for _, ev := range s.Events() {
		if !ev.TaskAssignmentID.Valid {
			continue
		}
		aid := ev.TaskAssignmentID.Value
		raw, err := ev.Raw()
		if err != nil {
			t.Fatal(err)
		}
		st, ok := s.AssignmentAt(aid, ev.IngestedAt)
		if !ok {
			t.Fatalf("event %s: no state of assignment %d at its own time", ev.EventID, aid)
		}
		status, _ := raw.String("status")
		prev, _ := raw.String("previousStatus")
		to, _ := raw.Int64("assignedToUserId")
		by, _ := raw.Int64("assignedByUserId")
		if st.Status != status || st.PreviousStatus != prev || st.AssignedTo != to || st.AssignedBy != by || st.EventType != ev.EventType || st.AssignmentID != aid {
			t.Fatalf("event %s: state %+v, raw_data %s", ev.EventID, st, ev.RawData)
		}
		if st.UpdatedAt != ev.IngestedAt || st.CreatedAt.After(st.UpdatedAt) {
			t.Fatalf("event %s at %s: state %+v", ev.EventID, ev.IngestedAt, st)
		}
		if (st.Status == claimx.StatusCompleted) != !st.CompletedAt.IsZero() || st.CompletedAt.After(ev.IngestedAt) {
			t.Fatalf("event %s: status %s, completed_at %s", ev.EventID, st.Status, st.CompletedAt)
		}

		// The API as of the event's time serves the same state.
		s.SetNow(ev.IngestedAt)
		code, body := get(t, srv, "/customTasks/assignment/"+strconv.FormatInt(aid, 10), DefaultToken)
		if code != 200 {
			t.Fatalf("GET assignment %d: %d %s", aid, code, body)
		}
		row, err := claimx.DecodeRow(body)
		if err != nil {
			t.Fatal(err)
		}
		rs, _ := row.String("status")
		rto, _ := row.Int64("assigned_to_user_id")
		created, _ := row.Time("created_at")
		completed, _ := row.Time("completed_at")
		if rs != st.Status || rto != st.AssignedTo || !created.Equal(st.CreatedAt) || !completed.Equal(st.CompletedAt) {
			t.Fatalf("assignment %d at %s: API row %s, state %+v", aid, ev.IngestedAt, body, st)
		}

		if _, ok := s.AssignmentAt(aid, st.CreatedAt.Add(-time.Millisecond)); ok {
			t.Fatalf("assignment %d has a state before it was created", aid)
		}
		checked++
	}
	if checked < 100 {
		t.Fatalf("checked %d task events, want many", checked)
	}
	if _, ok := s.AssignmentAt(42, s.End()); ok {
		t.Fatal("unknown assignment id: got a state")
	}
}
