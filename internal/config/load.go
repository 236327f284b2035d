// Package config loads kpipe's configuration folder: the plugins, their
// workers and the named connections, as SPEC.md writes them.
//
// Each file is read, ${VAR} and ${VAR:default} are expanded from the
// environment, and the result is decoded strictly: an unknown field is an
// error with file, line, column and the nearest valid name. Problems across
// all files are collected and returned together as one *Error.
//
//	cfg, err := config.Load("config", config.WithEnv(os.LookupEnv))
//	if err != nil {
//		return err // every problem, each as file:line:column: message
//	}
//	w, _ := cfg.Worker("itel_cabinet_tracking_worker")
//
// Layout of the folder:
//
//	plugins/<name>/config.yaml          one plugin
//	plugins/<name>/workers.yaml         workers: map of plugin action workers
//	plugins/shared/connections/*.yaml   connections: map of named connections
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// DefaultBatchSize is a worker's batch_size when the file gives none.
const DefaultBatchSize = 100

// Worker message limits: the defaults of max_message_bytes and
// max_nesting_depth, and the most max_nesting_depth may be (a Parquet
// column has at most 255 definition levels, and a nested array can take 3
// of them, so deeper rows could not be stored).
const (
	DefaultMaxMessageBytes = 1 << 20
	DefaultMaxNestingDepth = 64
	MaxNestingDepthLimit   = 80
)

// HandlerTypes are the handler types kpipe implements.
var HandlerTypes = []string{"transform", "validation", "lookup", "delta_writer"}

// HandlerAliases maps other spellings of a handler type to its name: SPEC.md
// names the Delta writer by its Python path.
var HandlerAliases = map[string]string{
	"kafka_pipeline.plugins.handlers.delta_writer:DeltaTableWriter": "delta_writer",
}

// Option changes how Load works.
type Option func(*loader)

// WithEnv sets the environment lookup for ${VAR} expansion. The default is
// os.LookupEnv.
func WithEnv(lookup LookupEnv) Option { return func(l *loader) { l.env = lookup } }

// WithHandlerTypes replaces the known handler types.
func WithHandlerTypes(types ...string) Option {
	return func(l *loader) { l.handlerTypes = types }
}

// WithHandlerCheck adds a check of every handler's config block, such as
// decoding it strictly into the handler's config type and validating it.
func WithHandlerCheck(check func(*HandlerSpec) error) Option {
	return func(l *loader) { l.handlerCheck = check }
}

type loader struct {
	env          LookupEnv
	handlerTypes []string
	handlerCheck func(*HandlerSpec) error
	probs        problems
	// connFailed is set when a connections file could not be loaded, so
	// that "connection not defined" is not reported on top of its problem.
	connFailed bool
}

// Load reads the configuration folder dir. On any problem it returns an
// *Error listing all of them.
func Load(dir string, opts ...Option) (*Config, error) {
	l := &loader{env: os.LookupEnv, handlerTypes: HandlerTypes}
	for _, o := range opts {
		o(l)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("configuration folder %q not found (use --config-dir)", dir)
	}
	cfg := &Config{Dir: dir, Connections: map[string]*Connection{}}
	l.loadConnections(cfg, filepath.Join(dir, "plugins", "shared", "connections"))
	pluginDirs, _ := filepath.Glob(filepath.Join(dir, "plugins", "*"))
	sort.Strings(pluginDirs)
	for _, pd := range pluginDirs {
		if filepath.Base(pd) == "shared" {
			continue
		}
		if st, err := os.Stat(pd); err != nil || !st.IsDir() {
			continue
		}
		l.loadPlugin(cfg, filepath.Join(pd, "config.yaml"))
		l.loadWorkers(cfg, filepath.Join(pd, "workers.yaml"))
	}
	if len(cfg.Plugins) == 0 && len(cfg.Workers) == 0 && len(l.probs.list) == 0 {
		l.probs.add(Pos{File: filepath.Join(dir, "plugins")}, "no plugins/*/config.yaml or workers.yaml found")
	}
	sort.SliceStable(cfg.Plugins, func(i, j int) bool {
		a, b := cfg.Plugins[i], cfg.Plugins[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		return a.Name < b.Name
	})
	sort.Slice(cfg.Workers, func(i, j int) bool { return cfg.Workers[i].Name < cfg.Workers[j].Name })
	l.validate(cfg)
	if err := l.probs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Worker returns the worker called name.
func (c *Config) Worker(name string) (*Worker, error) {
	names := make([]string, 0, len(c.Workers))
	for _, w := range c.Workers {
		if w.Name == name {
			return w, nil
		}
		names = append(names, w.Name)
	}
	return nil, fmt.Errorf("no worker %q in %s (workers: %s)", name, c.Dir, strings.Join(names, ", "))
}

// EnabledPlugins returns the enabled plugins in priority order.
func (c *Config) EnabledPlugins() []*Plugin {
	var out []*Plugin
	for _, p := range c.Plugins {
		if p.Enabled {
			out = append(out, p)
		}
	}
	return out
}

// read reads and expands file; ok is false when it does not exist.
func (l *loader) read(file string) ([]byte, bool) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		l.probs.add(Pos{File: file}, "%v", err)
		return nil, false
	}
	data, err = Expand(data, file, l.env)
	if err != nil {
		l.probs.addErr(file, err)
		return nil, false
	}
	return data, true
}

// maxUnknownFields bounds how many unknown fields of one file are reported.
const maxUnknownFields = 50

// decode decodes data strictly into v, adding problems for file. An unknown
// field is reported, dropped from the document, and decoding goes on, so
// that every unknown field of the file is reported at once and the rest is
// still validated; ok is false when v could not be decoded at all.
func (l *loader) decode(file string, data []byte, v any) (ok bool) {
	doc, err := parser.ParseBytes(data, 0)
	if err != nil {
		l.probs.addErr(file, problemsFrom(file, err, nil))
		return false
	}
	if len(doc.Docs) == 0 || doc.Docs[0].Body == nil {
		l.probs.add(Pos{File: file}, "file is empty")
		return false
	}
	body := doc.Docs[0].Body
	fields := fieldsOf(v)
	for range maxUnknownFields {
		err := strict(body, v)
		if err == nil {
			return true
		}
		ce := problemsFrom(file, err, fields)
		l.probs.addErr(file, ce)
		p := ce.Problems[0].Pos
		if !strings.HasPrefix(ce.Problems[0].Msg, "unknown field") || !dropKeyAt(body, p.Line, p.Column) {
			return false
		}
	}
	return false
}

// dropKeyAt removes the mapping entry whose key starts at line:column.
func dropKeyAt(root ast.Node, line, column int) bool {
	dropped := false
	ast.Walk(visitFunc(func(n ast.Node) bool {
		m, isMap := n.(*ast.MappingNode)
		if !isMap || dropped {
			return !dropped
		}
		for i, kv := range m.Values {
			if tk := kv.Key.GetToken(); tk != nil && tk.Position.Line == line && tk.Position.Column == column {
				m.Values = append(m.Values[:i], m.Values[i+1:]...)
				dropped = true
				return false
			}
		}
		return true
	}), root)
	return dropped
}

type visitFunc func(ast.Node) bool

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	if f(n) {
		return f
	}
	return nil
}

func (l *loader) loadPlugin(cfg *Config, file string) {
	data, ok := l.read(file)
	if !ok {
		return
	}
	p := new(Plugin)
	if !l.decode(file, data, p) {
		return
	}
	p.File = file
	for id, t := range p.Config.Triggers {
		if t == nil {
			t = new(Trigger)
			p.Config.Triggers[id] = t
		}
		t.TaskID = id
	}
	cfg.Plugins = append(cfg.Plugins, p)
}

func (l *loader) loadWorkers(cfg *Config, file string) {
	data, ok := l.read(file)
	if !ok {
		return
	}
	var f struct {
		Workers yaml.MapSlice `yaml:"workers"`
	}
	var raw struct {
		Workers map[string]*Worker `yaml:"workers"`
	}
	if !l.decode(file, data, &raw) {
		return
	}
	// Keep the file's order for positions and duplicate checks.
	_ = yaml.Unmarshal(data, &f)
	for _, item := range f.Workers {
		key := fmt.Sprint(item.Key)
		w := raw.Workers[key]
		if w == nil {
			l.probs.add(Pos{File: file}, "worker %q is empty", key)
			continue
		}
		w.File = file
		w.pos.File = file
		if w.Name == "" {
			w.Name = key
		} else if w.Name != key {
			l.probs.add(w.pos, "worker %q has name %q: the name must equal its key", key, w.Name)
		}
		for _, h := range w.EnrichmentHandlers {
			if h != nil {
				h.file = file
				h.Pos.File = file
				h.typePos.File = file
			}
		}
		for _, other := range cfg.Workers {
			if other.Name == w.Name {
				l.probs.add(Pos{File: file}, "worker %q is also defined in %s", w.Name, other.File)
			}
		}
		cfg.Workers = append(cfg.Workers, w)
	}
}

func (l *loader) loadConnections(cfg *Config, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	more, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	files = append(files, more...)
	sort.Strings(files)
	for _, file := range files {
		data, ok := l.read(file)
		if !ok {
			l.connFailed = true
			continue
		}
		var f struct {
			Connections map[string]*Connection `yaml:"connections"`
		}
		if !l.decode(file, data, &f) {
			l.connFailed = true
			continue
		}
		keys := make([]string, 0, len(f.Connections))
		for k := range f.Connections {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, key := range keys {
			c := f.Connections[key]
			if c == nil {
				l.probs.add(Pos{File: file}, "connection %q is empty", key)
				continue
			}
			c.File = file
			c.pos.File = file
			if c.Name == "" {
				c.Name = key
			} else if c.Name != key {
				l.probs.add(Pos{File: file}, "connection %q has name %q: the name must equal its key", key, c.Name)
			}
			if other, dup := cfg.Connections[c.Name]; dup {
				l.probs.add(Pos{File: file}, "connection %q is also defined in %s", c.Name, other.File)
				continue
			}
			cfg.Connections[c.Name] = c
		}
	}
}

// topicName is what Kafka accepts as a topic name.
var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func (l *loader) checkTopic(pos Pos, field, topic string, required bool) {
	switch {
	case topic == "" && required:
		l.probs.add(pos, "%s is required", field)
	case topic == "":
	case topic == "." || topic == ".." || !topicName.MatchString(topic):
		l.probs.add(pos, "%s %q is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)", field, topic)
	}
}

func (l *loader) validate(cfg *Config) {
	pluginNames := map[string]string{}
	for _, p := range cfg.Plugins {
		pos := Pos{File: p.File}
		if p.Name == "" {
			l.probs.add(pos, "plugin has no name")
		} else if other, dup := pluginNames[p.Name]; dup {
			l.probs.add(pos, "plugin %q is also defined in %s", p.Name, other)
		}
		pluginNames[p.Name] = p.File
		if p.Kind() != "task_trigger" {
			l.probs.add(pos, "plugin %q: unknown module %q (kpipe implements kafka_pipeline.plugins.task_trigger)", p.Name, p.Module)
		}
		if p.Class != "" && p.Class != "TaskTriggerPlugin" && p.Kind() == "task_trigger" {
			l.probs.add(pos, "plugin %q: unknown class %q (the task_trigger module has TaskTriggerPlugin)", p.Name, p.Class)
		}
		if len(p.Config.Triggers) == 0 {
			l.probs.add(pos, "plugin %q has no triggers", p.Name)
		}
		ids := make([]int64, 0, len(p.Config.Triggers))
		for id := range p.Config.Triggers {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			t := p.Config.Triggers[id]
			where := fmt.Sprintf("plugin %q trigger %d", p.Name, id)
			if id <= 0 {
				l.probs.add(pos, "%s: the key must be a positive task template id", where)
			}
			if t.Name == "" {
				t.Name = fmt.Sprintf("task %d", id)
			}
			if t.OnAny == nil && len(t.OnStatus) == 0 {
				l.probs.add(pos, "%s has no on_any or on_<status> block", where)
			}
			blocks := map[string]*Actions{}
			if t.OnAny != nil {
				blocks["on_any"] = t.OnAny
			}
			for s, a := range t.OnStatus {
				blocks["on_"+s] = a
			}
			for name, a := range blocks {
				l.checkActions(pos, where+" "+name, a)
			}
		}
	}
	for _, w := range cfg.Workers {
		pos := w.pos
		where := fmt.Sprintf("worker %q", w.Name)
		l.checkTopic(pos, where+" input_topic", w.InputTopic, true)
		l.checkTopic(pos, where+" success_topic", w.SuccessTopic, false)
		l.checkTopic(pos, where+" error_topic", w.ErrorTopic, false)
		if err := w.SuccessRecord.Validate(); err != nil {
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				l.probs.add(pos, "%s success_record %v", where, e)
			}
		}
		if w.ConsumerGroup == "" {
			l.probs.add(pos, "%s consumer_group is required", where)
		}
		if w.BatchSize <= 0 {
			l.probs.add(pos, "%s batch_size must be greater than 0, not %d", where, w.BatchSize)
		}
		if w.MaxMessageBytes < 1 {
			l.probs.add(pos, "%s max_message_bytes must be greater than 0, not %d", where, w.MaxMessageBytes)
		}
		if w.MaxNestingDepth < 1 || w.MaxNestingDepth > MaxNestingDepthLimit {
			l.probs.add(pos, "%s max_nesting_depth must be between 1 and %d, not %d", where, MaxNestingDepthLimit, w.MaxNestingDepth)
		}
		if w.EnableAutoCommit {
			l.probs.add(pos, "%s enable_auto_commit must be false: kpipe commits offsets only after the rows they cover are durable", where)
		}
		if w.DestinationConnection != nil && *w.DestinationConnection != "" {
			if _, ok := cfg.Connections[*w.DestinationConnection]; !ok && !l.connFailed {
				l.probs.add(pos, "%s destination_connection %q is not defined%s", where, *w.DestinationConnection, l.connectionHint(cfg))
			}
		}
		if len(w.EnrichmentHandlers) == 0 {
			l.probs.add(pos, "%s has no enrichment_handlers", where)
		}
		for i, h := range w.EnrichmentHandlers {
			if h == nil {
				l.probs.add(pos, "%s handler %d is empty", where, i+1)
				continue
			}
			l.checkHandler(cfg, where, h)
		}
	}
	for _, c := range cfg.Connections {
		l.checkConnection(c)
	}
}

func (l *loader) connectionHint(cfg *Config) string {
	names := make([]string, 0, len(cfg.Connections))
	for n := range cfg.Connections {
		names = append(names, n)
	}
	if len(names) == 0 {
		return " (no connections are defined in plugins/shared/connections/)"
	}
	sort.Strings(names)
	return " (defined: " + strings.Join(names, ", ") + ")"
}

func (l *loader) checkActions(pos Pos, where string, a *Actions) {
	if a.PublishToTopic == "" && a.Log == nil {
		l.probs.add(pos, "%s has no action (publish_to_topic or log)", where)
	}
	l.checkTopic(pos, where+" publish_to_topic", a.PublishToTopic, false)
	if a.Log != nil {
		if a.Log.Message == "" {
			l.probs.add(pos, "%s log.message is required", where)
		}
		if a.Log.Level == "" {
			a.Log.Level = "info"
		}
		switch strings.ToLower(a.Log.Level) {
		case "debug", "info", "warn", "warning", "error":
		default:
			l.probs.add(pos, "%s log.level %q: want debug, info, warn or error", where, a.Log.Level)
		}
	}
}

func (l *loader) checkHandler(cfg *Config, where string, h *HandlerSpec) {
	if alias, ok := HandlerAliases[h.TypeAsWritten]; ok {
		h.Type = alias
	}
	known := false
	for _, t := range l.handlerTypes {
		known = known || t == h.Type
	}
	if !known {
		msg := fmt.Sprintf("%s: unknown handler type %q", where, h.TypeAsWritten)
		if s := nearest(h.TypeAsWritten, l.handlerTypes); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		} else {
			msg += " (known: " + strings.Join(l.handlerTypes, ", ") + ")"
		}
		l.probs.add(h.typePos, "%s", msg)
		return
	}
	if name, pos, ok := h.Field("connection"); ok {
		if _, defined := cfg.Connections[name]; !defined && !l.connFailed {
			l.probs.add(pos, "%s %s handler: connection %q is not defined%s", where, h.Type, name, l.connectionHint(cfg))
		}
	}
	if l.handlerCheck != nil {
		if err := l.handlerCheck(h); err != nil {
			var ce *Error
			if errors.As(err, &ce) {
				for _, p := range ce.Problems {
					p.Msg = fmt.Sprintf("%s %s handler: %s", where, h.Type, p.Msg)
				}
				l.probs.addErr(h.file, ce)
			} else {
				l.probs.add(h.Pos, "%s %s handler: %v", where, h.Type, err)
			}
		}
	}
}

func (l *loader) checkConnection(c *Connection) {
	pos := c.pos
	where := fmt.Sprintf("connection %q", c.Name)
	switch {
	case c.BaseURL == "":
		l.probs.add(pos, "%s base_url is required", where)
	case !strings.HasPrefix(c.BaseURL, "http://") && !strings.HasPrefix(c.BaseURL, "https://"):
		l.probs.add(pos, "%s base_url %q must start with http:// or https://", where, c.BaseURL)
	}
	switch c.AuthType {
	case "bearer":
		if c.AuthToken == "" {
			l.probs.add(pos, "%s auth_type bearer needs auth_token", where)
		}
	case "basic":
		if c.Username == "" {
			l.probs.add(pos, "%s auth_type basic needs username", where)
		}
	case "none", "":
		c.AuthType = "none"
	default:
		l.probs.add(pos, "%s auth_type %q: want bearer, basic or none", where, c.AuthType)
	}
	if c.TimeoutSeconds <= 0 {
		l.probs.add(pos, "%s timeout_seconds must be greater than 0", where)
	}
	if c.MaxRetries < 0 {
		l.probs.add(pos, "%s max_retries must not be negative", where)
	}
	if c.RetryBackoffBase < 1 {
		l.probs.add(pos, "%s retry_backoff_base must be at least 1", where)
	}
	if c.RetryBackoffMax < 0 || c.RetryAfterMaxSeconds < 0 {
		l.probs.add(pos, "%s retry_backoff_max and retry_after_max_seconds must not be negative", where)
	}
	if c.MaxConcurrency <= 0 {
		l.probs.add(pos, "%s max_concurrency must be greater than 0", where)
	}
	if c.RateLimit < 0 {
		l.probs.add(pos, "%s rate_limit must not be negative", where)
	}
}
