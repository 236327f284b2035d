package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"kpipe/internal/claimx"
	"kpipe/internal/config"
	"kpipe/internal/metrics"
)

// specConfig is SPEC.md's plugin configuration block, as
// DecodeTaskTrigger decodes it.
func specConfig() *TaskTriggerConfig {
	return &TaskTriggerConfig{
		IncludeTaskData: true, IncludeProjectData: true,
		Triggers: map[int64]*Trigger{32513: {
			TaskID: 32513, Name: "iTel Cabinet Task Tracking",
			OnAny: &Actions{
				PublishToTopic: "itel.cabinet.task.tracking",
				Log:            &LogAction{Level: "info", Message: "iTel Cabinet task event tracked | event_id={event_id} | task_id={task_id} | status={task_status}"},
			},
		}},
	}
}

// specPlugin is SPEC.md's plugin, as config.LoadPlugins reads it from the
// repository's config folder.
func specPlugin(t *testing.T) *config.Plugin {
	t.Helper()
	ps, err := config.LoadPlugins("../../config", config.WithPlugins(DefaultRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 {
		t.Fatalf("got %d plugins, want 1", len(ps))
	}
	return ps[0]
}

func taskEvent(t *testing.T, template int64, rawStatus, rowStatus string) *Enriched {
	t.Helper()
	ev := &claimx.Event{
		EventID: "evt-1", EventType: "CUSTOM_TASK_ASSIGNED", ProjectID: "5000001",
		IngestedAt:       time.Date(2026, 1, 10, 12, 34, 56, 789_000_000, time.UTC),
		TaskAssignmentID: claimx.SomeID(789),
	}
	raw := claimx.Row{"customTaskId": template}
	if rawStatus != "" {
		raw["status"] = rawStatus
	}
	return &Enriched{
		Event: ev, Raw: raw,
		Task:    entityOf(t, claimx.Row{"assignment_id": int64(789), "task_id": template, "task_name": "iTel Cabinet Documentation", "status": rowStatus, "project_id": "5000001"}),
		Project: entityOf(t, claimx.Row{"project_id": "5000001", "name": "Smith residence"}),
	}
}

// entityOf is a fetched row built in code.
func entityOf(t *testing.T, r claimx.Row) *Entity {
	t.Helper()
	raw, err := claimx.RawRowOf(r)
	if err != nil {
		t.Fatal(err)
	}
	return NewEntity(raw)
}

func TestTaskTriggerPayload(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	var logs bytes.Buffer
	p, err := NewTaskTrigger("itel_cabinet_api", specConfig(), Deps{Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var out Output
	if err := p.Handle(t.Context(), taskEvent(t, 32513, "in_progress", "completed"), &out); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 1 {
		t.Fatalf("got %d records, want 1", out.Len())
	}
	r := out.Records[0]
	if r.Topic != "itel.cabinet.task.tracking" || string(r.Key) != "789" {
		t.Fatalf("got topic %q key %q, want itel.cabinet.task.tracking / 789", r.Topic, r.Key)
	}
	want := `{"trigger_name":"iTel Cabinet Task Tracking","event_id":"evt-1","event_type":"CUSTOM_TASK_ASSIGNED",` +
		`"project_id":"5000001","task_id":32513,"assignment_id":789,"task_name":"iTel Cabinet Documentation",` +
		`"task_status":"in_progress","timestamp":"2026-01-10T12:34:56.789Z",` +
		`"previous_status":null,"assigned_to_user_id":null,"assigned_by_user_id":null,"task_created_at":null,"task_completed_at":null,` +
		`"task":{"assignment_id":789,"project_id":"5000001","status":"completed","task_id":32513,"task_name":"iTel Cabinet Documentation"},` +
		`"task_fetched_at":null,` +
		`"project":{"name":"Smith residence","project_id":"5000001"}}`
	if string(r.Value) != want {
		t.Fatalf("payload\n got %s\nwant %s", r.Value, want)
	}
	if !json.Valid(r.Value) {
		t.Fatal("payload is not valid JSON")
	}
	line := logs.String()
	if !strings.Contains(line, `msg="iTel Cabinet task event tracked | event_id=evt-1 | task_id=32513 | status=in_progress"`) ||
		!strings.Contains(line, "level=INFO") || !strings.Contains(line, "plugin=itel_cabinet_api") || !strings.Contains(line, `trigger="iTel Cabinet Task Tracking"`) {
		t.Fatalf("log line: %s", line)
	}
	if got := testutil.ToFloat64(m.PluginEventsTriggered.WithLabelValues("itel_cabinet_api")); got != 1 {
		t.Fatalf("triggered = %v, want 1", got)
	}
}

// TestTaskTriggerStatusFromRowAndExclusions: an event that carries no
// status (and whose type implies none) takes the row's status only when the
// row shows the task as of the event (updated at or before it); a row
// updated later leaves the status unknown (null), not the later one.
func TestTaskTriggerStatusFromRowAndExclusions(t *testing.T) {
	cfg := specConfig()
	cfg.IncludeTaskData = false
	cfg.IncludeProjectData = false
	p, err := NewTaskTrigger("itel_cabinet_api", cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		updated string
		want    any
	}{
		{"2026-01-10T12:00:00.000Z", "completed"},
		{"2026-01-10T12:34:56.789Z", "completed"},
		{"2026-01-10T13:00:00.000Z", nil},
		{"", nil},
	} {
		ev := taskEvent(t, 32513, "", "completed")
		ev.Event.EventType = "CUSTOM_TASK_UPDATED"
		if tt.updated != "" {
			row := ev.Task.Row()
			row["updated_at"] = tt.updated
			ev.Task = entityOf(t, row)
		}
		var out Output
		if err := p.Handle(t.Context(), ev, &out); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(out.Records[0].Value, &got); err != nil {
			t.Fatal(err)
		}
		if got["task_status"] != tt.want {
			t.Fatalf("row updated at %q: task_status = %v, want %v", tt.updated, got["task_status"], tt.want)
		}
		if _, ok := got["task"]; ok {
			t.Fatal("task included although include_task_data is false")
		}
		if _, ok := got["task_fetched_at"]; ok {
			t.Fatal("task_fetched_at included although include_task_data is false")
		}
		if _, ok := got["project"]; ok {
			t.Fatal("project included although include_project_data is false")
		}
	}
}

func TestTaskTriggerMatching(t *testing.T) {
	cfg := specConfig()
	tr := cfg.Triggers[32513]
	tr.OnAny = nil
	tr.OnStatus = map[string]*Actions{
		"completed": {PublishToTopic: "done"},
		"assigned":  {PublishToTopic: "new"},
	}
	p, err := NewTaskTrigger("itel_cabinet_api", cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		template  int64
		status    string
		wantTopic string
	}{
		{"on_completed", 32513, "completed", "done"},
		{"on_assigned", 32513, "assigned", "new"},
		{"no block for status", 32513, "in_progress", ""},
		{"other template", 40001, "completed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out Output
			if err := p.Handle(t.Context(), taskEvent(t, tt.template, tt.status, "x"), &out); err != nil {
				t.Fatal(err)
			}
			var got string
			if out.Len() == 1 {
				got = out.Records[0].Topic
			} else if out.Len() > 1 {
				t.Fatalf("got %d records", out.Len())
			}
			if got != tt.wantTopic {
				t.Fatalf("got topic %q, want %q", got, tt.wantTopic)
			}
		})
	}
	// A non-task event is ignored.
	var out Output
	if err := p.Handle(t.Context(), &Enriched{Event: &claimx.Event{EventID: "e", EventType: "PROJECT_CREATED"}}, &out); err != nil || out.Len() != 0 {
		t.Fatalf("non-task event: %d records, err %v", out.Len(), err)
	}
}

func TestTaskTriggerConfigErrors(t *testing.T) {
	cfg := specConfig()
	cfg.Triggers[32513].OnAny.Log.Message = "x {nope} {task.status}"
	cfg.Triggers[32513].OnStatus = map[string]*Actions{"done": {}}
	cfg.Triggers[1] = &Trigger{Name: "empty"}
	_, err := NewTaskTrigger("itel_cabinet_api", cfg, Deps{})
	if err == nil {
		t.Fatal("got no error")
	}
	for _, w := range []string{"{nope}", "on_done", "trigger 1"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %s", err, w)
		}
	}
}

// failing is a plugin that always fails or panics.
type failing struct {
	name  string
	panic bool
}

func (f *failing) Name() string { return f.name }
func (f *failing) Handle(_ context.Context, _ *Enriched, out *Output) error {
	out.Add(nil) // dropped by the orchestrator
	if f.panic {
		panic("boom")
	}
	return errors.New("broken")
}
func (f *failing) Close(context.Context) error { return nil }

func TestOrchestrator(t *testing.T) {
	reg := NewRegistry()
	reg.MustRegister(KindTaskTrigger, NewTaskTriggerFactory(), TaskTriggerModule)
	reg.MustRegister("failing", FactoryFunc(func(p *config.Plugin, _ Deps) (Plugin, error) {
		return &failing{name: p.Name, panic: p.Class == "panic"}, nil
	}))
	if err := reg.Register("failing", NewTaskTriggerFactory()); !errors.Is(err, ErrDuplicatePlugin) {
		t.Fatalf("duplicate register: got %v", err)
	}
	if err := reg.Register("other", NewTaskTriggerFactory(), TaskTriggerModule); !errors.Is(err, ErrDuplicatePlugin) {
		t.Fatalf("duplicate alias: got %v", err)
	}
	if err := reg.Register("", NewTaskTriggerFactory()); err == nil {
		t.Fatal("empty kind accepted")
	}
	promReg := prometheus.NewRegistry()
	m := metrics.New(promReg)
	var logs bytes.Buffer
	disabled := *specPlugin(t)
	disabled.Name, disabled.Enabled = "off", false
	plugins := []*config.Plugin{
		{Name: "first_bad", Module: "failing", Enabled: true, Priority: 10},
		{Name: "panicky", Module: "failing", Class: "panic", Enabled: true, Priority: 20},
		specPlugin(t),
		&disabled,
	}
	o, err := NewOrchestrator(t.Context(), reg, plugins, Deps{Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(t.Context())
	if got := strings.Join(o.Names(), ","); got != "first_bad,panicky,itel_cabinet_api" {
		t.Fatalf("plugins %s", got)
	}
	var out Output
	herr := o.Handle(t.Context(), taskEvent(t, 32513, "assigned", "assigned"), &out)
	var failed []string
	if j, ok := herr.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			var pe *PluginError
			if errors.As(e, &pe) {
				failed = append(failed, pe.Plugin)
			}
		}
	}
	if strings.Join(failed, ",") != "first_bad,panicky" {
		t.Fatalf("Handle returned %v, want the failures of first_bad and panicky", herr)
	}
	if out.Len() != 1 || out.Records[0] == nil {
		t.Fatalf("got %d records, want the task_trigger's one only", out.Len())
	}
	if logs.Len() != 0 {
		t.Fatalf("the orchestrator logged what it returned:\n%s", logs.String())
	}
	for _, name := range []string{"first_bad", "panicky"} {
		if got := testutil.ToFloat64(m.PluginErrors.WithLabelValues(name)); got != 1 {
			t.Fatalf("%s errors = %v, want 1", name, got)
		}
	}
	o.Published(&out)
	o.PublishFailed(&out)
	if got := testutil.ToFloat64(m.PluginEventsPublished.WithLabelValues("itel_cabinet_api")); got != 1 {
		t.Fatalf("published = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.PluginPublishErrors.WithLabelValues("itel_cabinet_api")); got != 1 {
		t.Fatalf("publish errors = %v, want 1", got)
	}

	_, err = NewOrchestrator(t.Context(), reg, []*config.Plugin{{Name: "x", Module: "python.thing", Enabled: true}}, Deps{})
	if !errors.Is(err, ErrUnknownPlugin) {
		t.Fatalf("unknown kind: got %v", err)
	}
}

// TestOrchestratorRepoConfig loads config/ as kpipe does and runs SPEC.md's
// plugin.
func TestOrchestratorRepoConfig(t *testing.T) {
	env := map[string]string{"CLAIMX_API_BASE_URL": "http://127.0.0.1:1", "CLAIMX_API_TOKEN": "t"}
	cfg, err := config.Load("../../config", config.WithEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOrchestrator(t.Context(), DefaultRegistry(), cfg.Plugins, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var out Output
	if err := o.Handle(t.Context(), taskEvent(t, 32513, "assigned", "assigned"), &out); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 1 || out.Records[0].Topic != "itel.cabinet.task.tracking" {
		t.Fatalf("got %d records", out.Len())
	}
}

func FuzzCompileLog(f *testing.F) {
	for _, s := range []string{"", "plain", "a {event_id} b", "{task.status}{project.name}", "{", "}{", "{unterminated", "{nope}", "{{event_id}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		lt, err := compileLog(&LogAction{Message: msg})
		if err != nil {
			return
		}
		fl := &fields{ev: &Enriched{Event: &claimx.Event{EventID: "E"}}, trigger: &trigger{name: "T"}}
		got := lt.render(fl)
		if !strings.Contains(msg, "{") && got != msg {
			t.Fatalf("template without fields %q rendered %q", msg, got)
		}
	})
}
