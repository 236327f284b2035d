package plugin

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"kpipe/internal/config"
)

// KindTaskTrigger is the kind of the task_trigger plugin; TaskTriggerModule
// and TaskTriggerClass are its module and class as SPEC.md names them.
const (
	KindTaskTrigger   = "task_trigger"
	TaskTriggerModule = "kafka_pipeline.plugins.task_trigger"
	TaskTriggerClass  = "TaskTriggerPlugin"
)

// TaskTriggerConfig is the config block of a task_trigger plugin.
type TaskTriggerConfig struct {
	// IncludeTaskData adds the task-assignment row as "task" to published
	// payloads. Default false.
	IncludeTaskData bool `yaml:"include_task_data"`
	// IncludeProjectData adds the project row as "project". Default false.
	IncludeProjectData bool `yaml:"include_project_data"`
	// Triggers are keyed by task template id. At least one.
	Triggers map[int64]*Trigger `yaml:"triggers"`
}

// Trigger is what to do for the events of one task template.
type Trigger struct {
	// TaskID is the task template id the trigger is keyed by.
	TaskID int64 `yaml:"-"`
	// Name appears in published payloads as trigger_name. Default "task
	// <id>".
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// OnAny runs for every event of the template (YAML key on_any).
	OnAny *Actions `yaml:"-"`
	// OnStatus runs when the task's status equals the key (YAML keys
	// on_<status>, e.g. on_assigned, on_completed).
	OnStatus map[string]*Actions `yaml:"-"`
}

// Actions are the actions of one on_* block; at least one is set.
type Actions struct {
	// PublishToTopic publishes the SPEC.md payload to this topic, keyed by
	// assignment_id.
	PublishToTopic string `yaml:"publish_to_topic"`
	// Log writes a log line.
	Log *LogAction `yaml:"log"`
}

// LogAction writes Message at Level; {field} placeholders take values from
// the payload (event_id, task_id, task_status, ...; see TemplateFields).
type LogAction struct {
	// Level is debug, info, warn (or warning) or error. Default info.
	Level string `yaml:"level"`
	// Message is the template. Required.
	Message string `yaml:"message"`
}

// DecodeTaskTrigger decodes the config block of the task_trigger plugin p
// strictly, with its defaults, and validates it.
func DecodeTaskTrigger(p *config.Plugin) (*TaskTriggerConfig, error) {
	if p.Class != "" && p.Class != TaskTriggerClass {
		return nil, fmt.Errorf("unknown class %q (the task_trigger module has %s)", p.Class, TaskTriggerClass)
	}
	cfg := new(TaskTriggerConfig)
	if err := p.Config.Decode(cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// UnmarshalYAML decodes the block strictly and keys each trigger: its
// TaskID, and its default name.
func (c *TaskTriggerConfig) UnmarshalYAML(node ast.Node) error {
	type plain TaskTriggerConfig
	var p plain
	if err := config.DecodeNode(node, &p); err != nil {
		return err
	}
	for id, t := range p.Triggers {
		if t == nil {
			continue
		}
		t.TaskID = id
		if t.Name == "" {
			t.Name = fmt.Sprintf("task %d", id)
		}
	}
	*c = TaskTriggerConfig(p)
	return nil
}

// Validate implements config.Validator: every problem of every trigger,
// joined.
func (c *TaskTriggerConfig) Validate() error {
	var errs []error
	if len(c.Triggers) == 0 {
		errs = append(errs, errors.New("config.triggers: at least one trigger is required"))
	}
	ids := make([]int64, 0, len(c.Triggers))
	for id := range c.Triggers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		tc := c.Triggers[id]
		if id <= 0 {
			errs = append(errs, fmt.Errorf("trigger %d: the key must be a positive task template id", id))
		}
		if tc == nil {
			errs = append(errs, fmt.Errorf("trigger %d: empty", id))
			continue
		}
		if tc.OnAny == nil && len(tc.OnStatus) == 0 {
			errs = append(errs, fmt.Errorf("trigger %d: no on_any or on_<status> actions", id))
		}
		if tc.OnAny != nil {
			if err := tc.OnAny.validate(); err != nil {
				errs = append(errs, fmt.Errorf("trigger %d on_any: %w", id, err))
			}
		}
		statuses := make([]string, 0, len(tc.OnStatus))
		for s := range tc.OnStatus {
			statuses = append(statuses, s)
		}
		sort.Strings(statuses)
		for _, s := range statuses {
			if err := tc.OnStatus[s].validate(); err != nil {
				errs = append(errs, fmt.Errorf("trigger %d on_%s: %w", id, s, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (a *Actions) validate() error {
	if a == nil || (a.PublishToTopic == "" && a.Log == nil) {
		return errors.New("no action: want publish_to_topic and/or log")
	}
	var errs []error
	if a.PublishToTopic != "" {
		if err := config.CheckTopic(a.PublishToTopic); err != nil {
			errs = append(errs, fmt.Errorf("publish_to_topic %w", err))
		}
	}
	if a.Log != nil {
		if _, err := compileLog(a.Log); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// UnmarshalYAML decodes a trigger: name, description, on_any and any number
// of on_<status> blocks.
func (t *Trigger) UnmarshalYAML(node ast.Node) error {
	entries, err := config.Entries(node)
	if err != nil {
		return err
	}
	for _, e := range entries {
		switch key := e.Key; {
		case key == "name":
			if err := config.DecodeNode(e.Value, &t.Name); err != nil {
				return err
			}
		case key == "description":
			if err := config.DecodeNode(e.Value, &t.Description); err != nil {
				return err
			}
		case strings.HasPrefix(key, "on_") && len(key) > 3:
			a := new(Actions)
			if err := config.DecodeNode(e.Value, a); err != nil {
				return err
			}
			if key == "on_any" {
				t.OnAny = a
				continue
			}
			if t.OnStatus == nil {
				t.OnStatus = make(map[string]*Actions)
			}
			t.OnStatus[strings.TrimPrefix(key, "on_")] = a
		default:
			return config.UnknownField(e.KeyNode, key, []string{"name", "description", "on_any", "on_assigned", "on_in_progress", "on_completed"})
		}
	}
	return nil
}

// MarshalYAML writes a trigger back in its file form.
func (t *Trigger) MarshalYAML() (any, error) {
	m := yaml.MapSlice{{Key: "name", Value: t.Name}}
	if t.Description != "" {
		m = append(m, yaml.MapItem{Key: "description", Value: t.Description})
	}
	if t.OnAny != nil {
		m = append(m, yaml.MapItem{Key: "on_any", Value: t.OnAny})
	}
	statuses := make([]string, 0, len(t.OnStatus))
	for s := range t.OnStatus {
		statuses = append(statuses, s)
	}
	sort.Strings(statuses)
	for _, s := range statuses {
		m = append(m, yaml.MapItem{Key: "on_" + s, Value: t.OnStatus[s]})
	}
	return m, nil
}

// UnmarshalYAML applies the default level, then decodes strictly.
func (l *LogAction) UnmarshalYAML(node ast.Node) error {
	type plain LogAction
	p := plain{Level: "info"}
	if err := config.DecodeNode(node, &p); err != nil {
		return err
	}
	*l = LogAction(p)
	return nil
}

// slogLevel is the action's level as a slog.Level (info when empty).
func (l *LogAction) slogLevel() (slog.Level, error) {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log: level %q: want debug, info, warn or error", l.Level)
}

// TriggerTaskIDs returns the task template ids the triggers of the enabled
// task_trigger plugins of plugins are keyed by, sorted, each once (kpipe
// report's default template).
func TriggerTaskIDs(plugins []*config.Plugin) ([]int64, error) {
	var ids []int64
	var errs []error
	for _, p := range plugins {
		if !p.Enabled {
			continue
		}
		if kind, err := DefaultRegistry().Resolve(p.Kind()); err != nil || kind != KindTaskTrigger {
			continue
		}
		cfg, err := DecodeTaskTrigger(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("plugin %q (%s): %w", p.Name, p.File, err))
			continue
		}
		for id := range cfg.Triggers {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), errors.Join(errs...)
}
