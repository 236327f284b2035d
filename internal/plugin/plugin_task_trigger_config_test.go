package plugin

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kpipe/internal/config"
)

func testEnv(name string) (string, bool) {
	switch name {
	case "CLAIMX_API_BASE_URL":
		return "http://127.0.0.1:8080", true
	case "CLAIMX_API_TOKEN":
		return "t", true
	}
	return "", false
}

// copyConfig copies the repository's config folder into a temporary one,
// replacing old with new in plugins/itel_cabinet_api/config.yaml.
func copyConfig(t *testing.T, old, new string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join("..", "..", "config")
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if rel == filepath.Join("plugins", "itel_cabinet_api", "config.yaml") {
			if !strings.Contains(string(data), old) {
				t.Fatalf("%s does not contain %q", rel, old)
			}
			data = []byte(strings.Replace(string(data), old, new, 1))
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestDecodeCommittedTaskTrigger(t *testing.T) {
	p := specPlugin(t)
	if p.Kind() != KindTaskTrigger {
		t.Fatalf("kind %q, want %q", p.Kind(), KindTaskTrigger)
	}
	cfg, err := DecodeTaskTrigger(p)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.IncludeTaskData || !cfg.IncludeProjectData {
		t.Fatalf("include_*_data not read: %+v", cfg)
	}
	tr := cfg.Triggers[32513]
	if tr == nil || tr.Name != "iTel Cabinet Task Tracking" || tr.TaskID != 32513 {
		t.Fatalf("trigger 32513 = %+v", tr)
	}
	if tr.OnAny == nil || tr.OnAny.PublishToTopic != "itel.cabinet.task.tracking" {
		t.Fatalf("on_any = %+v", tr.OnAny)
	}
	if tr.OnAny.Log == nil || tr.OnAny.Log.Level != "info" || !strings.Contains(tr.OnAny.Log.Message, "{task_status}") {
		t.Fatalf("on_any.log = %+v", tr.OnAny.Log)
	}
}

func TestDecodeTaskTriggerDefaults(t *testing.T) {
	dir := copyConfig(t, "      name: iTel Cabinet Task Tracking\n", "")
	dir2 := copyConfig(t, "          level: info\n", "")
	for _, d := range []string{dir, dir2} {
		ps, err := config.LoadPlugins(d, config.WithPlugins(DefaultRegistry()))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := DecodeTaskTrigger(ps[0])
		if err != nil {
			t.Fatal(err)
		}
		tr := cfg.Triggers[32513]
		if d == dir && tr.Name != "task 32513" {
			t.Errorf("default name %q, want %q", tr.Name, "task 32513")
		}
		if d == dir2 && tr.OnAny.Log.Level != "info" {
			t.Errorf("default level %q, want info", tr.OnAny.Log.Level)
		}
	}
}

// TestTaskTriggerProblemsAtFileLine checks that config.Load, given the
// plugin registry, reports a plugin block's problems with the file and
// line they are at, all of them.
func TestTaskTriggerProblemsAtFileLine(t *testing.T) {
	const file = "plugins/itel_cabinet_api/config.yaml"
	tests := []struct {
		name     string
		old, new string
		want     []string
	}{
		{
			name: "unknown field in a trigger",
			old:  "      on_any:", new: "      on_anny:\n        publish_to_topic: x\n      onany:",
			want: []string{file + ":22:7: plugin \"itel_cabinet_api\": unknown field \"onany\" (did you mean \"on_any\"?)"},
		},
		{
			name: "two unknown fields",
			old:  "  include_task_data: true\n  include_project_data: true", new: "  include_task_dat: true\n  include_project_dat: true",
			want: []string{
				file + ":11:3: plugin \"itel_cabinet_api\": unknown field \"include_task_dat\" (did you mean \"include_task_data\"?)",
				file + ":12:3: plugin \"itel_cabinet_api\": unknown field \"include_project_dat\" (did you mean \"include_project_data\"?)",
			},
		},
		{
			name: "bad level, topic and class, all reported",
			old:  "          level: info", new: "          level: loud",
			want: []string{file + ": plugin \"itel_cabinet_api\": trigger 32513 on_any: log: level \"loud\": want debug, info, warn or error"},
		},
		{
			name: "unknown module",
			old:  "module: kafka_pipeline.plugins.task_trigger", new: "module: kafka_pipeline.plugins.task_triger",
			want: []string{file + ": plugin \"itel_cabinet_api\" module: unknown plugin kind \"kafka_pipeline.plugins.task_triger\""},
		},
		{
			name: "unknown class",
			old:  "class: TaskTriggerPlugin", new: "class: Other",
			want: []string{file + ": plugin \"itel_cabinet_api\": unknown class \"Other\""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyConfig(t, tt.old, tt.new)
			_, err := config.Load(dir, config.WithEnv(testEnv), config.WithPlugins(DefaultRegistry()))
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v (%T), want *config.Error", err, err)
			}
			got := make([]string, len(ce.Problems))
			for i, p := range ce.Problems {
				got[i] = strings.TrimPrefix(p.Error(), dir+string(filepath.Separator))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d:\n got %s\nwant %s", i, got[i], w)
				}
			}
		})
	}
}

func TestTriggerTaskIDs(t *testing.T) {
	ids, err := TriggerTaskIDs([]*config.Plugin{specPlugin(t)})
	if err != nil || !slices.Equal(ids, []int64{32513}) {
		t.Fatalf("got %v, %v; want [32513]", ids, err)
	}
	off := *specPlugin(t)
	off.Enabled = false
	if ids, err := TriggerTaskIDs([]*config.Plugin{&off, {Name: "x", Module: "other", Enabled: true}}); err != nil || len(ids) != 0 {
		t.Fatalf("disabled and other plugins: got %v, %v; want none", ids, err)
	}
	dir := copyConfig(t, "  triggers:\n", "  triggers:\n    40001:\n      on_completed:\n        publish_to_topic: done\n")
	ps, err := config.LoadPlugins(dir, config.WithPlugins(DefaultRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := TriggerTaskIDs(ps); err != nil || !slices.Equal(ids, []int64{32513, 40001}) {
		t.Fatalf("two triggers: got %v, %v", ids, err)
	}
}
