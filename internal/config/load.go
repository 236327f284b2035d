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
// A component's config: block (a handler's, a plugin's) is not this
// package's to know: it is kept as a Block and decoded strictly, with its
// defaults, and validated by the component's factory, which Load calls
// through the registry it is given (WithHandlers, WithPlugins). Registry is
// the generic name → factory map both registries are built on.
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

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// DefaultBatchSize is a worker's batch_size when the file gives none.
const DefaultBatchSize = 100

// DefaultPollsInFlight is a worker's polls_in_flight when the file gives
// none; MaxPollsInFlight is the most it may say.
const (
	DefaultPollsInFlight = 8
	MaxPollsInFlight     = 256
)

// DefaultFetchMaxBytes and DefaultFetchMaxPartitionBytes are a worker's
// fetch_max_bytes and fetch_max_partition_bytes when the file gives none;
// MinFetchBytes and MaxFetchBytes bound both.
const (
	DefaultFetchMaxBytes          = 8 << 20
	DefaultFetchMaxPartitionBytes = 512 << 10
	MinFetchBytes                 = 1 << 10
	MaxFetchBytes                 = 1 << 30
)

// Worker message limits: the defaults of max_message_bytes and
// max_nesting_depth, and the most max_nesting_depth may be (a Parquet
// column has at most 255 definition levels, and a nested array can take 3
// of them, so deeper rows could not be stored).
const (
	DefaultMaxMessageBytes = 1 << 20
	DefaultMaxNestingDepth = 64
	MaxNestingDepthLimit   = 80
)

// Option changes how Load works.
type Option func(*loader)

// WithEnv sets the environment lookup for ${VAR} expansion. The default is
// os.LookupEnv.
func WithEnv(lookup LookupEnv) Option { return func(l *loader) { l.env = lookup } }

// WithHandlers checks every handler entry against the handler registry c:
// its type (an alias resolved into HandlerSpec.Type) and its config block.
// Without it handler types and blocks are not checked.
func WithHandlers(c Checker[*HandlerSpec]) Option { return func(l *loader) { l.handlers = c } }

// WithPlugins checks every plugin against the plugin registry c: its
// module (resolved into Plugin.Kind) and its config block. Without it
// plugin modules and blocks are not checked.
func WithPlugins(c Checker[*Plugin]) Option { return func(l *loader) { l.plugins = c } }

type loader struct {
	env      LookupEnv
	handlers Checker[*HandlerSpec]
	plugins  Checker[*Plugin]
	probs    problems
	// connFailed is set when a connections file could not be loaded, so
	// that "connection not defined" is not reported on top of its problem.
	connFailed bool
}

func newLoader(dir string, opts []Option) (*loader, error) {
	l := &loader{env: os.LookupEnv}
	for _, o := range opts {
		o(l)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("configuration folder %q not found (use --config-dir)", dir)
	}
	return l, nil
}

// pluginDirs are the plugins/* folders of dir but shared.
func pluginDirs(dir string) []string {
	all, _ := filepath.Glob(filepath.Join(dir, "plugins", "*"))
	sort.Strings(all)
	var out []string
	for _, pd := range all {
		if filepath.Base(pd) == "shared" {
			continue
		}
		if st, err := os.Stat(pd); err != nil || !st.IsDir() {
			continue
		}
		out = append(out, pd)
	}
	return out
}

// LoadPlugins reads only the plugins of the configuration folder dir
// (plugins/*/config.yaml), in priority order, for commands that need no
// workers or connections. On any problem it returns an *Error listing all
// of them.
func LoadPlugins(dir string, opts ...Option) ([]*Plugin, error) {
	l, err := newLoader(dir, opts)
	if err != nil {
		return nil, err
	}
	cfg := &Config{Dir: dir}
	for _, pd := range pluginDirs(dir) {
		l.loadPlugin(cfg, filepath.Join(pd, "config.yaml"))
	}
	sortPlugins(cfg.Plugins)
	l.checkPlugins(cfg)
	if err := l.probs.err(); err != nil {
		return nil, err
	}
	return cfg.Plugins, nil
}

func sortPlugins(ps []*Plugin) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		return a.Name < b.Name
	})
}

// Load reads the configuration folder dir. On any problem it returns an
// *Error listing all of them.
func Load(dir string, opts ...Option) (*Config, error) {
	l, err := newLoader(dir, opts)
	if err != nil {
		return nil, err
	}
	cfg := &Config{Dir: dir, Connections: map[string]*Connection{}}
	l.loadConnections(cfg, filepath.Join(dir, "plugins", "shared", "connections"))
	for _, pd := range pluginDirs(dir) {
		l.loadPlugin(cfg, filepath.Join(pd, "config.yaml"))
		l.loadWorkers(cfg, filepath.Join(pd, "workers.yaml"))
	}
	if len(cfg.Plugins) == 0 && len(cfg.Workers) == 0 && len(l.probs.list) == 0 {
		l.probs.add(Pos{File: filepath.Join(dir, "plugins")}, "no plugins/*/config.yaml or workers.yaml found")
	}
	sortPlugins(cfg.Plugins)
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

// decode decodes data strictly into v, adding problems for file: every
// unknown field of the file is reported and dropped, and the rest decoded
// and checked; ok is false when v could not be decoded at all.
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
	return decodeReporting(&l.probs, file, doc.Docs[0].Body, v)
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
	p.Config.file = file
	cfg.Plugins = append(cfg.Plugins, p)
}

// workersFile is a workers.yaml.
type workersFile struct {
	Workers workerList `yaml:"workers"`
}

// workerList is the workers: map, in file order.
type workerList []keyedWorker

type keyedWorker struct {
	key string
	w   *Worker // nil for an empty entry
}

// UnmarshalYAML decodes the workers in file order, each strictly.
func (wl *workerList) UnmarshalYAML(node ast.Node) error {
	pairs, err := mappingPairs(node)
	if err != nil {
		return err
	}
	for _, kv := range pairs {
		kw := keyedWorker{key: keyString(kv)}
		if _, isNull := kv.Value.(*ast.NullNode); !isNull && kv.Value != nil {
			kw.w = new(Worker)
			if err := strict(kv.Value, kw.w); err != nil {
				return err
			}
		}
		*wl = append(*wl, kw)
	}
	return nil
}

func (l *loader) loadWorkers(cfg *Config, file string) {
	data, ok := l.read(file)
	if !ok {
		return
	}
	var f workersFile
	if !l.decode(file, data, &f) {
		return
	}
	for _, item := range f.Workers {
		key, w := item.key, item.w
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
				h.config.file = file
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

// CheckTopic returns an error when topic is not a valid Kafka topic name.
func CheckTopic(topic string) error {
	if topic == "." || topic == ".." || !topicName.MatchString(topic) {
		return fmt.Errorf("%q is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)", topic)
	}
	return nil
}

func (l *loader) checkTopic(pos Pos, field, topic string, required bool) {
	switch {
	case topic == "" && required:
		l.probs.add(pos, "%s is required", field)
	case topic == "":
	default:
		if err := CheckTopic(topic); err != nil {
			l.probs.add(pos, "%s %v", field, err)
		}
	}
}

// checkPlugins checks every plugin's name, and its module and config
// block against the plugin registry; the block's rules are the plugin's.
func (l *loader) checkPlugins(cfg *Config) {
	pluginNames := map[string]string{}
	for _, p := range cfg.Plugins {
		pos := Pos{File: p.File}
		if p.Name == "" {
			l.probs.add(pos, "plugin has no name")
		} else if other, dup := pluginNames[p.Name]; dup {
			l.probs.add(pos, "plugin %q is also defined in %s", p.Name, other)
		}
		pluginNames[p.Name] = p.File
		if l.plugins == nil {
			continue
		}
		where := fmt.Sprintf("plugin %q", p.Name)
		kind, err := l.plugins.Resolve(p.Module)
		if err != nil {
			l.probs.add(pos, "%s module: %v", where, err)
			continue
		}
		p.kind = kind
		l.addCheck(pos, where, l.plugins.Check(p))
	}
}

// addCheck adds the problems of a component's check, each message
// prefixed with where the component is: an *Error's problems at their
// places, the errors an errors.Join holds one by one, and any other error
// at pos.
func (l *loader) addCheck(pos Pos, where string, err error) {
	if err == nil {
		return
	}
	var ce *Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			p.Msg = where + ": " + p.Msg
		}
		l.probs.addErr(pos.File, ce)
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			l.addCheck(pos, where, e)
		}
		return
	}
	l.probs.add(pos, "%s: %v", where, err)
}

func (l *loader) validate(cfg *Config) {
	l.checkPlugins(cfg)
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
		if w.PollsInFlight < 1 || w.PollsInFlight > MaxPollsInFlight {
			l.probs.add(pos, "%s polls_in_flight must be between 1 and %d, not %d", where, MaxPollsInFlight, w.PollsInFlight)
		}
		for _, f := range []struct {
			name string
			v    int
		}{{"fetch_max_bytes", w.FetchMaxBytes}, {"fetch_max_partition_bytes", w.FetchMaxPartitionBytes}} {
			if f.v < MinFetchBytes || f.v > MaxFetchBytes {
				l.probs.add(pos, "%s %s must be between %d (1 KiB) and %d (1 GiB), not %d", where, f.name, MinFetchBytes, MaxFetchBytes, f.v)
			}
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
			if h.TypeAsWritten == "" {
				hint := ""
				if names, ok := l.handlers.(interface{ Names() []string }); ok {
					hint = " (one of " + strings.Join(names.Names(), ", ") + ")"
				}
				l.probs.add(h.Pos, "%s handler %d has no type%s", where, i+1, hint)
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

func (l *loader) checkHandler(cfg *Config, where string, h *HandlerSpec) {
	if l.handlers != nil {
		t, err := l.handlers.Resolve(h.TypeAsWritten)
		if err != nil {
			l.probs.add(h.typePos, "%s: %v", where, err)
			return
		}
		h.Type = t
	}
	if name, pos, ok := h.Field("connection"); ok {
		if _, defined := cfg.Connections[name]; !defined && !l.connFailed {
			l.probs.add(pos, "%s %s handler: connection %q is not defined%s", where, h.Type, name, l.connectionHint(cfg))
		}
	}
	if l.handlers != nil {
		l.addCheck(h.Pos, fmt.Sprintf("%s %s handler", where, h.Type), l.handlers.Check(h))
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
	case "none":
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
