// Package plugin runs kpipe's plugins over enriched ClaimX events: the
// Plugin interface, a Registry of plugin kinds, the Orchestrator that runs
// every enabled plugin in priority order, and the task_trigger plugin.
//
// A plugin's config: block is kept as YAML by config.Load and decoded
// strictly by the plugin's Factory, which also validates it: the plugin
// owns its fields, defaults and rules, as a handler does in pipeline.
//
// A plugin does not produce to Kafka itself: it appends the records it wants
// published to an Output, and the enrichment worker produces them in the same
// Kafka transaction that commits the consumed offsets, so each event's
// records are published exactly once.
//
//	orch, err := plugin.NewOrchestrator(ctx, plugin.DefaultRegistry(), cfg.Plugins, plugin.Deps{Logger: log, Metrics: m})
//	var out plugin.Output
//	err = orch.Handle(ctx, &plugin.Enriched{Event: &ev, Raw: raw, Task: task, Project: project}, &out) // *PluginError per failed plugin
//	// produce out.Records in the transaction; after it commits:
//	orch.Published(&out)
package plugin

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
)

// Plugin reacts to enriched events.
//
// Handle is called for every event, in each partition's order; it may be
// called concurrently for events of different partitions, so
// implementations must be safe for concurrent use. It appends the records to
// publish to out (Output.Add) and returns an error only when it failed; an
// event it does not care about is simply ignored (nothing appended, nil
// error). It must not block on I/O: the enrichment worker has already
// fetched every row the event needs.
//
// Close releases the plugin's resources; it is called once, after the last
// Handle.
type Plugin interface {
	Name() string
	Handle(ctx context.Context, ev *Enriched, out *Output) error
	Close(ctx context.Context) error
}

// Enriched is one ClaimX event with the rows fetched for it.
type Enriched struct {
	// Event is the event as consumed.
	Event *claimx.Event
	// Raw is the raw_data of a task event, decoded; nil when absent and for
	// other events (decode Event.RawData when needed).
	Raw claimx.Row
	// Task is the task-assignment row of a task event; nil otherwise.
	Task *Entity
	// Project is the project row of a task event; nil otherwise.
	Project *Entity
}

// TaskID returns the task template id (the template id a trigger is keyed
// by): the task row's task_id, else raw_data's customTaskId.
func (e *Enriched) TaskID() (int64, bool) {
	if e.Task != nil {
		if id, ok := e.Task.Int64("task_id"); ok {
			return id, true
		}
	}
	return e.Raw.Int64("customTaskId")
}

// AssignmentID returns the task assignment id: the event's
// task_assignment_id, else the task row's assignment_id.
func (e *Enriched) AssignmentID() (int64, bool) {
	if e.Event != nil && e.Event.TaskAssignmentID.Valid {
		return e.Event.TaskAssignmentID.Value, true
	}
	if e.Task != nil {
		return e.Task.Int64("assignment_id")
	}
	return 0, false
}

// TaskStatus returns the task's status as of the event (AtEvent's Status):
// raw_data's status, else the status the event type implies, else the
// fetched row's when the row shows the task as of the event. The row may
// have moved on since the event, so it is never taken for a later state.
func (e *Enriched) TaskStatus() string {
	if s, ok := e.Raw.String("status"); ok && s != "" {
		return s
	}
	if s := impliedStatus[e.eventType()]; s != "" {
		return s
	}
	s, _ := e.rowAtEvent(e.EventTime()).String("status")
	return s
}

func (e *Enriched) eventType() string {
	if e.Event == nil {
		return ""
	}
	return e.Event.EventType
}

// TaskName returns the task row's task_name, else raw_data's customTaskName.
func (e *Enriched) TaskName() (string, bool) {
	if e.Task != nil {
		if s, ok := e.Task.String("task_name"); ok {
			return s, true
		}
	}
	return e.Raw.String("customTaskName")
}

// ProjectID returns the event's project_id, else the task row's.
func (e *Enriched) ProjectID() string {
	if e.Event != nil && e.Event.ProjectID != "" {
		return e.Event.ProjectID
	}
	if e.Task != nil {
		s, _ := e.Task.String("project_id")
		return s
	}
	return ""
}

// Entity is a fetched row shared by every event that uses it (rows are
// cached), kept as its JSON text (claimx.RawRow): its accessors read the
// text, and JSON gives the text a payload embeds.
type Entity struct {
	*claimx.RawRow
	// FetchedAt is when the row was fetched from ClaimX (zero when
	// unknown); set it before the Entity is shared.
	FetchedAt time.Time
}

// NewEntity wraps a fetched row.
func NewEntity(r *claimx.RawRow) *Entity { return &Entity{RawRow: r} }

// Output collects the records plugins want published for a batch of
// events, remembering which plugin asked for each so that the published
// count can be recorded once the transaction commits. It is not safe for
// concurrent use; use one Output per goroutine.
type Output struct {
	// Records are the records to produce, in order.
	Records []*kgo.Record
	owners  []int32
	owner   int32
}

// Add appends a record to publish.
func (o *Output) Add(r *kgo.Record) {
	o.Records = append(o.Records, r)
	o.owners = append(o.owners, o.owner)
}

// Len is the number of records collected.
func (o *Output) Len() int { return len(o.Records) }

// Reset empties the output for reuse.
func (o *Output) Reset() {
	clear(o.Records)
	o.Records = o.Records[:0]
	o.owners = o.owners[:0]
}

// Truncate drops the records added after the first n (the enrichment
// worker drops an event's records that Kafka cannot take).
func (o *Output) Truncate(n int) { o.truncate(n) }

// truncate drops the records added after the first n (a failed plugin's).
func (o *Output) truncate(n int) {
	clear(o.Records[n:])
	o.Records = o.Records[:n]
	o.owners = o.owners[:n]
}
