package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testEnv is the environment the committed configuration needs.
func testEnv(name string) (string, bool) {
	switch name {
	case "CLAIMX_API_BASE_URL":
		return "http://127.0.0.1:8080", true
	case "CLAIMX_API_TOKEN":
		return "s3cr3t-token", true
	}
	return "", false
}

// copyConfig copies the repository's config folder into a temporary one.
func copyConfig(t *testing.T) string {
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
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// edit replaces old with new in the file rel of dir; old must be there.
func edit(t *testing.T, dir, rel, old, new string) {
	t.Helper()
	path := filepath.Join(dir, rel)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s does not contain %q", rel, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lookupCfg is the lookup handler's configuration, as far as these tests
// need it.
type lookupCfg struct {
	Connection  string            `yaml:"connection"`
	Endpoint    string            `yaml:"endpoint"`
	PathParams  map[string]string `yaml:"path_params"`
	ResultField string            `yaml:"result_field"`
	CacheTTL    int               `yaml:"cache_ttl"`
	OnError     string            `yaml:"on_error"`
}

// testHandlers is a handler registry with the names (and the alias) of
// kpipe's handlers, as pipeline.DefaultRegistry has them; its check
// decodes a lookup block strictly.
func testHandlers() Checker[*HandlerSpec] {
	r := NewRegistry[func(*HandlerSpec) error]("handler", errors.New("unknown handler type"), errors.New("handler type already registered"))
	none := func(*HandlerSpec) error { return nil }
	r.MustRegister("transform", none)
	r.MustRegister("validation", none)
	r.MustRegister("lookup", func(h *HandlerSpec) error { return h.Decode(&lookupCfg{}) })
	r.MustRegister("delta_writer", none, "kafka_pipeline.plugins.handlers.delta_writer:DeltaTableWriter")
	return registryChecker{r}
}

type registryChecker struct {
	*Registry[func(*HandlerSpec) error]
}

func (c registryChecker) Check(h *HandlerSpec) error {
	_, check, err := c.Lookup(h.Type)
	if err != nil {
		return err
	}
	return check(h)
}

// testPlugins is a plugin registry knowing the task_trigger module by its
// SPEC.md name, as plugin.DefaultRegistry does; it checks nothing.
func testPlugins() Checker[*Plugin] {
	r := NewRegistry[struct{}]("plugin", errors.New("unknown plugin kind"), errors.New("plugin kind already registered"))
	r.MustRegister("task_trigger", struct{}{}, "kafka_pipeline.plugins.task_trigger")
	return pluginChecker{r}
}

type pluginChecker struct{ *Registry[struct{}] }

func (pluginChecker) Check(*Plugin) error { return nil }

func TestLoadCommittedConfig(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "config"), WithEnv(testEnv), WithHandlers(testHandlers()), WithPlugins(testPlugins()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := len(cfg.Plugins); got != 1 {
		t.Fatalf("got %d plugins, want 1", got)
	}
	p := cfg.Plugins[0]
	if p.Name != "itel_cabinet_api" || p.Kind() != "task_trigger" || !p.Enabled || p.Priority != 50 {
		t.Fatalf("plugin = %+v", p)
	}
	// The block is the plugin's to decode (plugin tests check its values).
	if p.Config.IsZero() || p.Config.Pos().Line != 11 {
		t.Fatalf("config block at %v, zero %v", p.Config.Pos(), p.Config.IsZero())
	}
	var block map[string]any
	if err := p.Config.Decode(&block); err != nil || block["triggers"] == nil {
		t.Fatalf("config block = %v, %v", block, err)
	}

	w, err := cfg.Worker("itel_cabinet_tracking_worker")
	if err != nil {
		t.Fatal(err)
	}
	if w.InputTopic != "itel.cabinet.task.tracking" || w.ConsumerGroup != "itel_cabinet_tracking_worker_group" ||
		w.BatchSize != 100 || w.EnableAutoCommit || w.SuccessTopic != "itel.cabinet.task.tracking.success" ||
		w.ErrorTopic != "itel.cabinet.task.tracking.errors" {
		t.Fatalf("worker = %+v", w)
	}
	if got := strings.Join(w.SuccessRecord.Fields, ","); got != "event_id,task_id,assignment_id,task_status" {
		t.Fatalf("success_record.fields = %s", got)
	}
	var types []string
	for _, h := range w.EnrichmentHandlers {
		types = append(types, h.Type)
	}
	if got, want := strings.Join(types, ","), "transform,validation,lookup,delta_writer"; got != want {
		t.Fatalf("handler chain %s, want %s", got, want)
	}
	if got := w.EnrichmentHandlers[3].TypeAsWritten; got != "kafka_pipeline.plugins.handlers.delta_writer:DeltaTableWriter" {
		t.Fatalf("alias as written = %q", got)
	}
	var lookup lookupCfg
	if err := w.EnrichmentHandlers[2].Decode(&lookup); err != nil {
		t.Fatal(err)
	}
	if lookup.Connection != "claimx_api" || lookup.Endpoint != "/api/v1/tasks/{task_id}" || lookup.CacheTTL != 60 || lookup.OnError != "log_and_continue" {
		t.Fatalf("lookup config = %+v", lookup)
	}

	c := cfg.Connections["claimx_api"]
	if c == nil || c.BaseURL != "http://127.0.0.1:8080" || c.AuthType != "bearer" || c.AuthToken.Reveal() != "s3cr3t-token" ||
		c.TimeoutSeconds != 30 || c.MaxRetries != 3 || c.RetryBackoffBase != 2 || c.RetryBackoffMax != 60 ||
		c.Headers["User-Agent"] != "ClaimXPipeline-iTel/1.0" {
		t.Fatalf("connection = %+v", c)
	}
	if c.MaxConcurrency != 32 || c.RetryAfterMaxSeconds != 60 {
		t.Fatalf("connection defaults not applied: %+v", c)
	}
}

// TestLoadProblems checks that each kind of mistake is reported with the
// file, line and column it is at.
func TestLoadProblems(t *testing.T) {
	const workers = "plugins/itel_cabinet_api/workers.yaml"
	const conns = "plugins/shared/connections/claimx.yaml"
	tests := []struct {
		name string
		rel  string
		old  string
		new  string
		env  LookupEnv
		want []string // substrings of one problem each, in order
	}{
		{
			name: "unknown field in workers.yaml",
			rel:  workers, old: "    batch_size: 100", new: "    batch_sise: 100",
			want: []string{workers + ":13:5: unknown field \"batch_sise\" (did you mean \"batch_size\"?)"},
		},
		{
			name: "misspelt handler type",
			rel:  workers, old: "- type: validation", new: "- type: validaton",
			want: []string{workers + ":63:15: worker \"itel_cabinet_tracking_worker\": unknown handler type \"validaton\" (did you mean \"validation\"?)"},
		},
		{
			name: "missing CLAIMX_API_TOKEN",
			env: func(n string) (string, bool) {
				if n == "CLAIMX_API_TOKEN" {
					return "", false
				}
				return testEnv(n)
			},
			want: []string{conns + ":14:17: environment variable CLAIMX_API_TOKEN is not set"},
		},
		{
			name: "handler names a connection that does not exist",
			rel:  workers, old: "connection: claimx_api", new: "connection: claimx_apii",
			want: []string{workers + ":82:23: worker \"itel_cabinet_tracking_worker\" lookup handler: connection \"claimx_apii\" is not defined (defined: claimx_api)"},
		},
		{
			name: "invalid topic and batch size and auto commit, all reported",
			rel:  workers, old: "    input_topic: itel.cabinet.task.tracking\n    consumer_group: itel_cabinet_tracking_worker_group\n    batch_size: 100\n    enable_auto_commit: false",
			new: "    input_topic: itel cabinet\n    consumer_group: itel_cabinet_tracking_worker_group\n    batch_size: 0\n    enable_auto_commit: true",
			want: []string{
				"input_topic \"itel cabinet\" is not a valid Kafka topic name",
				"batch_size must be greater than 0, not 0",
				"enable_auto_commit must be false",
			},
		},
		{
			name: "fetch sizes out of range",
			rel:  workers, old: "    batch_size: 100\n", new: "    batch_size: 100\n    fetch_max_bytes: 512\n    fetch_max_partition_bytes: 2147483648\n",
			want: []string{
				"fetch_max_bytes must be between 1024 (1 KiB) and 1073741824 (1 GiB), not 512",
				"fetch_max_partition_bytes must be between 1024 (1 KiB) and 1073741824 (1 GiB), not 2147483648",
			},
		},
		{
			name: "bad connection values",
			rel:  conns, old: "auth_type: bearer", new: "auth_type: oauth",
			want: []string{conns + ":11:9: connection \"claimx_api\" auth_type \"oauth\": want bearer, basic or none"},
		},
		{
			name: "unknown key beside type and config",
			rel:  workers, old: "      - type: lookup\n        config:", new: "      - type: lookup\n        confg: {}\n        config:",
			want: []string{workers + ":81:9: unknown field \"confg\" (did you mean \"config\"?)"},
		},
		{
			name: "default for a missing variable",
			rel:  conns, old: "${CLAIMX_API_BASE_URL}", new: "${CLAIMX_API_BASE_URL:http://localhost:1}",
			env: func(n string) (string, bool) {
				if n == "CLAIMX_API_BASE_URL" {
					return "", false
				}
				return testEnv(n)
			},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyConfig(t)
			if tt.rel != "" {
				edit(t, dir, tt.rel, tt.old, tt.new)
			}
			env := tt.env
			if env == nil {
				env = testEnv
			}
			_, err := Load(dir, WithEnv(env), WithHandlers(testHandlers()))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			var ce *Error
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
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d:\n got %s\nwant %s", i, got[i], w)
				}
			}
		})
	}
}

func TestHandlerCheckProblemsAreReported(t *testing.T) {
	dir := copyConfig(t)
	edit(t, dir, "plugins/itel_cabinet_api/workers.yaml", "cache_ttl: 60", "cache_tll: 60")
	_, err := Load(dir, WithEnv(testEnv), WithHandlers(testHandlers()))
	want := "plugins/itel_cabinet_api/workers.yaml:87:11: worker \"itel_cabinet_tracking_worker\" lookup handler: unknown field \"cache_tll\" (did you mean \"cache_ttl\"?)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want it to contain %s", err, want)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "config"), WithEnv(testEnv))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Connections["claimx_api"]
	for _, s := range []string{
		fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, *c, *c, c.AuthToken),
	} {
		if strings.Contains(s, "s3cr3t-token") {
			t.Fatalf("token printed: %s", s)
		}
	}
	if c.AuthToken.String() != "[REDACTED]" || Secret("").String() != "" {
		t.Fatalf("String() = %q", c.AuthToken.String())
	}
}

func TestMissingConfigDir(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.Contains(err.Error(), "--config-dir") {
		t.Fatalf("got %v, want a hint about --config-dir", err)
	}
}

func TestEveryUnknownFieldOfAFileIsReported(t *testing.T) {
	dir := copyConfig(t)
	rel := "plugins/itel_cabinet_api/workers.yaml"
	edit(t, dir, rel, "batch_size: 100", "batch_sise: 100")
	edit(t, dir, rel, "success_topic:", "sucess_topic:")
	edit(t, dir, rel, "- type: validation", "- type: validaton")
	_, err := Load(dir, WithEnv(testEnv), WithHandlers(testHandlers()))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want *Error", err)
	}
	var got []string
	for _, p := range ce.Problems {
		got = append(got, fmt.Sprintf("%d:%d %s", p.Pos.Line, p.Pos.Column, p.Msg))
	}
	want := []string{
		`13:5 unknown field "batch_sise" (did you mean "batch_size"?)`,
		`21:5 unknown field "sucess_topic" (did you mean "success_topic"?)`,
		`63:15 worker "itel_cabinet_tracking_worker": unknown handler type "validaton" (did you mean "validation"?)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHandlerWithoutType(t *testing.T) {
	dir := copyConfig(t)
	edit(t, dir, "plugins/itel_cabinet_api/workers.yaml", "      - type: lookup\n", "      - config: {}\n      - type: lookup\n")
	_, err := Load(dir, WithEnv(testEnv), WithHandlers(testHandlers()))
	want := ": worker \"itel_cabinet_tracking_worker\" handler 3 has no type (one of delta_writer, lookup, transform, validation)"
	if err == nil || !strings.Contains(err.Error(), "workers.yaml:80:") || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want it at workers.yaml:80 to contain %s", err, want)
	}
}

func TestSuccessRecordFields(t *testing.T) {
	const rel = "plugins/itel_cabinet_api/workers.yaml"
	const shipped = "fields: [event_id, task_id, assignment_id, task_status]"
	tests := []struct {
		name  string
		block string
		want  []string // problems; none when empty
	}{
		{name: "empty list", block: "fields: []"},
		{name: "misspelt key", block: "feilds: [event_id]", want: []string{`unknown field "feilds" (did you mean "fields"?)`}},
		{name: "bad fields", block: `fields: [topic, event_id, event_id, ""]`, want: []string{
			`success_record fields: "topic" is a key every success record has already`,
			`success_record fields: "event_id" is listed twice`,
			`success_record fields: a field is empty`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyConfig(t)
			edit(t, dir, rel, shipped, tt.block)
			cfg, err := Load(dir, WithEnv(testEnv))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				w, _ := cfg.Worker("itel_cabinet_tracking_worker")
				if len(w.SuccessRecord.Fields) != 0 {
					t.Fatalf("got fields %v, want none", w.SuccessRecord.Fields)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) != len(tt.want) {
				t.Fatalf("got %v, want %d problems", err, len(tt.want))
			}
			for i, p := range ce.Problems {
				if !strings.Contains(p.Msg, tt.want[i]) || p.Pos.Line == 0 || !strings.HasSuffix(p.Pos.File, "workers.yaml") {
					t.Fatalf("problem %d: got %s: %s, want a workers.yaml line and %q", i, p.Pos, p.Msg, tt.want[i])
				}
			}
		})
	}
}
