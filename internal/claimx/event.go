package claimx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"kpipe/internal/jsonx"
)

// Event types seen on claimx.events. The CUSTOM_TASK_UPDATED and
// CUSTOM_TASK_STATUS_CHANGED types carry the steps of a task lifecycle between
// assignment and completion.
const (
	EventProjectCreated               = "PROJECT_CREATED"
	EventProjectFileAdded             = "PROJECT_FILE_ADDED"
	EventProjectMFNAdded              = "PROJECT_MFN_ADDED"
	EventCustomTaskAssigned           = "CUSTOM_TASK_ASSIGNED"
	EventCustomTaskUpdated            = "CUSTOM_TASK_UPDATED"
	EventCustomTaskStatusChanged      = "CUSTOM_TASK_STATUS_CHANGED"
	EventCustomTaskCompleted          = "CUSTOM_TASK_COMPLETED"
	EventPolicyholderInvited          = "POLICYHOLDER_INVITED"
	EventPolicyholderJoined           = "POLICYHOLDER_JOINED"
	EventVideoCollaborationInviteSent = "VIDEO_COLLABORATION_INVITE_SENT"
	EventVideoCollaborationCompleted  = "VIDEO_COLLABORATION_COMPLETED"
)

// Task statuses of an assignment.
const (
	StatusAssigned   = "assigned"
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusReassigned = "reassigned"
	StatusReopened   = "reopened"
	StatusCancelled  = "cancelled"
)

// Errors of ParseEvent.
var (
	// ErrNotJSON means the message is not a JSON object.
	ErrNotJSON = errors.New("event is not a JSON object")
	// ErrMissingEventID means event_id is absent or empty.
	ErrMissingEventID = errors.New("event has no event_id")
	// ErrMissingEventType means event_type is absent or empty.
	ErrMissingEventType = errors.New("event has no event_type")
)

// ID is an integer id that may be absent (JSON null or missing). ClaimX sends
// ids as numbers; a numeric string is accepted too.
type ID struct {
	Value int64
	Valid bool
}

// SomeID returns a valid ID.
func SomeID(v int64) ID { return ID{Value: v, Valid: true} }

// MarshalJSON implements json.Marshaler: a number, or null.
func (id ID) MarshalJSON() ([]byte, error) { return id.appendJSON(nil), nil }

func (id ID) appendJSON(dst []byte) []byte {
	if !id.Valid {
		return append(dst, "null"...)
	}
	return strconv.AppendInt(dst, id.Value, 10)
}

// UnmarshalJSON implements json.Unmarshaler.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*id = ID{}
		return nil
	}
	s := string(b)
	if len(b) >= 2 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*id = ID{}
			return nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("id %s is not an integer", truncate(string(b), 40))
	}
	*id = ID{Value: v, Valid: true}
	return nil
}

// Event is one ClaimX event as it arrives on claimx.events. RawData keeps the
// event's raw_data object as received (decode it with Raw when needed).
type Event struct {
	EventID              string          `json:"event_id"`
	EventType            string          `json:"event_type"`
	ProjectID            string          `json:"project_id"`
	IngestedAt           time.Time       `json:"ingested_at"`
	TaskAssignmentID     ID              `json:"task_assignment_id"`
	MediaID              ID              `json:"media_id"`
	VideoCollaborationID ID              `json:"video_collaboration_id"`
	MasterFileName       string          `json:"master_file_name"`
	RawData              json.RawMessage `json:"raw_data"`
}

// IsTaskEvent reports whether the event concerns a task assignment
// (CUSTOM_TASK_* with a task_assignment_id).
func (e *Event) IsTaskEvent() bool {
	return e.TaskAssignmentID.Valid && strings.HasPrefix(e.EventType, "CUSTOM_TASK_")
}

// Raw decodes RawData into a Row (nil when raw_data is absent or null).
func (e *Event) Raw() (Row, error) {
	if len(e.RawData) == 0 || string(e.RawData) == "null" {
		return nil, nil
	}
	return DecodeRow(e.RawData)
}

// ParseEvent decodes one claimx.events message. It fails with ErrNotJSON,
// ErrMissingEventID or ErrMissingEventType (wrapped with detail), or with a
// field type error; unknown top-level fields are ignored.
func ParseEvent(b []byte) (Event, error) {
	var e Event
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' {
		return Event{}, fmt.Errorf("%w: starts with %q", ErrNotJSON, truncate(string(t), 16))
	}
	if err := json.Unmarshal(t, &e); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Event{}, fmt.Errorf("%w: %v", ErrNotJSON, err)
		}
		return Event{}, fmt.Errorf("decoding event: %w", err)
	}
	if e.EventID == "" {
		return Event{}, ErrMissingEventID
	}
	if e.EventType == "" {
		return Event{}, fmt.Errorf("%w (event_id %q)", ErrMissingEventType, truncate(e.EventID, 64))
	}
	if len(e.RawData) > 0 && e.RawData[0] != '{' && string(e.RawData) != "null" {
		return Event{}, fmt.Errorf("decoding event %q: raw_data is not an object", truncate(e.EventID, 64))
	}
	return e, nil
}

// AppendJSON appends the event's JSON encoding to dst. It allocates nothing
// beyond dst's growth, for producers of many events.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = jsonx.AppendString(dst, e.EventID)
	dst = append(dst, `,"event_type":`...)
	dst = jsonx.AppendString(dst, e.EventType)
	dst = append(dst, `,"project_id":`...)
	dst = jsonx.AppendString(dst, e.ProjectID)
	dst = append(dst, `,"ingested_at":"`...)
	dst = e.IngestedAt.UTC().AppendFormat(dst, TimeFormat)
	dst = append(dst, `","task_assignment_id":`...)
	dst = e.TaskAssignmentID.appendJSON(dst)
	dst = append(dst, `,"media_id":`...)
	dst = e.MediaID.appendJSON(dst)
	dst = append(dst, `,"video_collaboration_id":`...)
	dst = e.VideoCollaborationID.appendJSON(dst)
	dst = append(dst, `,"master_file_name":`...)
	if e.MasterFileName == "" {
		dst = append(dst, "null"...)
	} else {
		dst = jsonx.AppendString(dst, e.MasterFileName)
	}
	dst = append(dst, `,"raw_data":`...)
	if len(e.RawData) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, e.RawData...)
	}
	return append(dst, '}')
}

// MarshalJSON implements json.Marshaler with the layout of AppendJSON.
func (e Event) MarshalJSON() ([]byte, error) {
	if len(e.RawData) > 0 && !json.Valid(e.RawData) {
		return nil, fmt.Errorf("event %q: raw_data is not valid JSON", e.EventID)
	}
	return e.AppendJSON(make([]byte, 0, 256+len(e.RawData))), nil
}

// TimeFormat is how ClaimX writes timestamps: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// UnmarshalJSON implements json.Unmarshaler. It accepts project_id as a
// string or a number (ClaimX rows carry it both ways).
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var aux struct {
		plain
		ProjectID flexString `json:"project_id"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*e = Event(aux.plain)
	e.ProjectID = string(aux.ProjectID)
	return nil
}

// flexString decodes a JSON string, number or null into a string.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*s = ""
	case len(b) > 0 && b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
	case len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')):
		*s = flexString(b)
	default:
		return fmt.Errorf("project_id %s is neither a string nor a number", truncate(string(b), 40))
	}
	return nil
}
