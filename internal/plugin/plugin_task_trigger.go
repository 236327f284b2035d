package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/config"
	"kpipe/internal/jsonx"
)

// TaskTrigger is the task_trigger plugin (SPEC.md "iTel Cabinet Plugin"):
// triggers keyed by task template id; on_any runs for every event of the
// template, on_<status> when the event's task status matches. Its actions
// publish the SPEC.md payload to a topic (key: assignment_id, so one task's
// events stay in order) and write a log line from a {field} template.
type TaskTrigger struct {
	name        string
	includeTask bool
	includeProj bool
	triggers    map[int64]*trigger
	log         *slog.Logger
	triggered   prometheus.Counter
}

type trigger struct {
	taskID   int64
	name     string
	onAny    *actions
	onStatus map[string]*actions
}

type actions struct {
	topic string
	log   *logTemplate
}

// NewTaskTriggerFactory returns the Factory of KindTaskTrigger: it decodes
// the plugin's config block into a TaskTriggerConfig (DecodeTaskTrigger)
// and builds it with NewTaskTrigger.
func NewTaskTriggerFactory() Factory { return taskTriggerFactory{} }

type taskTriggerFactory struct{}

func (taskTriggerFactory) Check(p *config.Plugin) error {
	_, err := DecodeTaskTrigger(p)
	return err
}

func (taskTriggerFactory) New(p *config.Plugin, deps Deps) (Plugin, error) {
	cfg, err := DecodeTaskTrigger(p)
	if err != nil {
		return nil, err
	}
	return buildTaskTrigger(p.Name, cfg, deps)
}

// NewTaskTrigger validates cfg and builds the task_trigger plugin called
// name from it.
func NewTaskTrigger(name string, cfg *TaskTriggerConfig, deps Deps) (*TaskTrigger, error) {
	var errs []error
	if name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return buildTaskTrigger(name, cfg, deps)
}

// buildTaskTrigger builds the plugin of a validated configuration.
func buildTaskTrigger(name string, cfg *TaskTriggerConfig, deps Deps) (*TaskTrigger, error) {
	deps = deps.withDefaults()
	t := &TaskTrigger{
		name:        name,
		includeTask: cfg.IncludeTaskData,
		includeProj: cfg.IncludeProjectData,
		triggers:    make(map[int64]*trigger, len(cfg.Triggers)),
		log:         deps.Logger.With("plugin", name),
		triggered:   deps.Metrics.PluginEventsTriggered.WithLabelValues(name),
	}
	for id, tc := range cfg.Triggers {
		tr := &trigger{taskID: id, name: tc.Name, onStatus: make(map[string]*actions, len(tc.OnStatus))}
		var err error
		if tr.onAny, err = compileActions(tc.OnAny); err != nil {
			return nil, fmt.Errorf("trigger %d on_any: %w", id, err)
		}
		for status, a := range tc.OnStatus {
			if tr.onStatus[status], err = compileActions(a); err != nil {
				return nil, fmt.Errorf("trigger %d on_%s: %w", id, status, err)
			}
		}
		t.triggers[id] = tr
	}
	return t, nil
}

func compileActions(a *Actions) (*actions, error) {
	if a == nil {
		return nil, nil
	}
	out := &actions{topic: a.PublishToTopic}
	if a.Log != nil {
		lt, err := compileLog(a.Log)
		if err != nil {
			return nil, err
		}
		out.log = lt
	}
	return out, nil
}

// Name implements Plugin.
func (t *TaskTrigger) Name() string { return t.name }

// Close implements Plugin.
func (t *TaskTrigger) Close(context.Context) error { return nil }

// Handle implements Plugin: events whose task template has no trigger, and
// events no block of the trigger matches, are ignored.
func (t *TaskTrigger) Handle(ctx context.Context, ev *Enriched, out *Output) error {
	taskID, ok := ev.TaskID()
	if !ok {
		return nil
	}
	tr := t.triggers[taskID]
	if tr == nil {
		return nil
	}
	status := ev.TaskStatus()
	blocks := [2]*actions{tr.onAny, tr.onStatus[status]}
	if blocks[0] == nil && blocks[1] == nil {
		return nil
	}
	t.triggered.Inc()
	f := fields{ev: ev, trigger: tr, taskID: taskID, status: status}
	var payload []byte
	for _, a := range blocks {
		if a == nil {
			continue
		}
		if a.topic != "" {
			if payload == nil {
				payload = t.payload(&f)
			}
			aid, _ := ev.AssignmentID()
			out.Add(&kgo.Record{Topic: a.topic, Key: strconv.AppendInt(nil, aid, 10), Value: payload})
		}
		if a.log != nil && t.log.Enabled(ctx, a.log.level) {
			t.log.Log(ctx, a.log.level, a.log.render(&f), "trigger", tr.name, "event_id", ev.Event.EventID)
		}
	}
	return nil
}

// fields are the values a payload and a log template draw from.
type fields struct {
	ev      *Enriched
	trigger *trigger
	taskID  int64
	status  string
}

// payload encodes SPEC.md's payload, fields in its order: trigger_name,
// event_id, event_type, project_id, task_id, assignment_id, task_name,
// task_status, timestamp, task, project. Not in SPEC.md: the task's other
// tracked values as of the event (AtEvent) follow timestamp —
// previous_status, assigned_to_user_id, assigned_by_user_id,
// task_created_at, task_completed_at, null when the event does not tell —
// and task_fetched_at, when the task row was fetched, follows task. The
// fetched row describes the moment of its fetch, which may be later than
// the event: it stays whole in task, and the tracked values do not come from
// it.
func (t *TaskTrigger) payload(f *fields) []byte {
	ev := f.ev
	var taskJS, projJS string
	if t.includeTask && ev.Task != nil {
		taskJS = ev.Task.JSON()
	}
	if t.includeProj && ev.Project != nil {
		projJS = ev.Project.JSON()
	}
	st := ev.AtEvent()
	b := make([]byte, 0, 512+len(taskJS)+len(projJS))
	b = append(b, `{"trigger_name":`...)
	b = jsonx.AppendString(b, f.trigger.name)
	b = append(b, `,"event_id":`...)
	b = jsonx.AppendString(b, ev.Event.EventID)
	b = append(b, `,"event_type":`...)
	b = jsonx.AppendString(b, ev.Event.EventType)
	b = append(b, `,"project_id":`...)
	b = jsonx.AppendString(b, ev.ProjectID())
	b = append(b, `,"task_id":`...)
	b = strconv.AppendInt(b, f.taskID, 10)
	b = append(b, `,"assignment_id":`...)
	aid, ok := ev.AssignmentID()
	b = appendInt(b, aid, ok)
	b = append(b, `,"task_name":`...)
	name, ok := ev.TaskName()
	b = appendString(b, name, ok)
	b = append(b, `,"task_status":`...)
	b = appendString(b, f.status, f.status != "")
	b = append(b, `,"timestamp":`...)
	b = appendTime(b, ev.Event.IngestedAt)
	b = append(b, `,"previous_status":`...)
	b = appendString(b, st.PreviousStatus, st.PreviousStatus != "")
	b = append(b, `,"assigned_to_user_id":`...)
	b = appendInt(b, st.AssignedTo, st.HasAssignedTo)
	b = append(b, `,"assigned_by_user_id":`...)
	b = appendInt(b, st.AssignedBy, st.HasAssignedBy)
	b = append(b, `,"task_created_at":`...)
	b = appendTime(b, st.CreatedAt)
	b = append(b, `,"task_completed_at":`...)
	b = appendTime(b, st.CompletedAt)
	if t.includeTask {
		b = append(b, `,"task":`...)
		b = appendRaw(b, taskJS)
		b = append(b, `,"task_fetched_at":`...)
		var at time.Time
		if ev.Task != nil {
			at = ev.Task.FetchedAt
		}
		b = appendTime(b, at)
	}
	if t.includeProj {
		b = append(b, `,"project":`...)
		b = appendRaw(b, projJS)
	}
	return append(b, '}')
}

func appendString(b []byte, s string, ok bool) []byte {
	if !ok {
		return append(b, "null"...)
	}
	return jsonx.AppendString(b, s)
}

func appendInt(b []byte, i int64, ok bool) []byte {
	if !ok {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, i, 10)
}

// appendTime appends t in ClaimX's format, UTC; null when zero.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, claimx.TimeFormat)
	return append(b, '"')
}

func appendRaw(b []byte, js string) []byte {
	if len(js) == 0 {
		return append(b, "null"...)
	}
	return append(b, js...)
}

// value returns the value of a template field: a payload field, or a dotted
// path into the task row (task.status) or the project row (project.name).
func (f *fields) value(name string) string {
	ev := f.ev
	switch name {
	case "trigger_name":
		return f.trigger.name
	case "event_id":
		return ev.Event.EventID
	case "event_type":
		return ev.Event.EventType
	case "project_id":
		return ev.ProjectID()
	case "task_id":
		return strconv.FormatInt(f.taskID, 10)
	case "assignment_id":
		if aid, ok := ev.AssignmentID(); ok {
			return strconv.FormatInt(aid, 10)
		}
		return ""
	case "task_name":
		s, _ := ev.TaskName()
		return s
	case "task_status":
		return f.status
	case "timestamp":
		if ev.Event.IngestedAt.IsZero() {
			return ""
		}
		return ev.Event.IngestedAt.UTC().Format(claimx.TimeFormat)
	case "previous_status":
		return ev.AtEvent().PreviousStatus
	}
	if path, ok := strings.CutPrefix(name, "task."); ok && ev.Task != nil {
		s, _ := ev.Task.String(path)
		return s
	}
	if path, ok := strings.CutPrefix(name, "project."); ok && ev.Project != nil {
		s, _ := ev.Project.String(path)
		return s
	}
	return ""
}

// TemplateFields are the {field} names a log message may use, besides
// task.<path> and project.<path> into the fetched rows.
var TemplateFields = []string{"trigger_name", "event_id", "event_type", "project_id", "task_id", "assignment_id", "task_name", "task_status", "timestamp", "previous_status"}

// logTemplate is a compiled log action: literal text and {field}
// placeholders.
type logTemplate struct {
	level slog.Level
	parts []tmplPart
}

type tmplPart struct {
	lit   string
	field string // set for a placeholder
}

func compileLog(l *LogAction) (*logTemplate, error) {
	var errs []error
	if l.Message == "" {
		errs = append(errs, errors.New("log: message is required"))
	}
	level, err := l.slogLevel()
	if err != nil {
		errs = append(errs, err)
	}
	lt := &logTemplate{level: level}
	s := l.Message
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			lt.parts = append(lt.parts, tmplPart{lit: s})
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			lt.parts = append(lt.parts, tmplPart{lit: s})
			break
		}
		if i > 0 {
			lt.parts = append(lt.parts, tmplPart{lit: s[:i]})
		}
		name := s[i+1 : i+j]
		if !slices.Contains(TemplateFields, name) && !strings.HasPrefix(name, "task.") && !strings.HasPrefix(name, "project.") {
			errs = append(errs, fmt.Errorf("log: message field {%s}: want one of %v, task.<field> or project.<field>", name, TemplateFields))
		}
		lt.parts = append(lt.parts, tmplPart{field: name})
		s = s[i+j+1:]
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return lt, nil
}

func (lt *logTemplate) render(f *fields) string {
	var b strings.Builder
	for _, p := range lt.parts {
		if p.field != "" {
			b.WriteString(f.value(p.field))
		} else {
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

var (
	_ Plugin  = (*TaskTrigger)(nil)
	_ Factory = taskTriggerFactory{}
)
