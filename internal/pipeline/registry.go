package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"kpipe/internal/config"
	"kpipe/internal/delta"
	"kpipe/internal/metrics"

	"github.com/prometheus/client_golang/prometheus"
)

// Validator is implemented by handler configurations: Validate checks the
// decoded values and joins every problem it finds.
type Validator = config.Validator

// Factory builds one kind of handler from its handler spec.
type Factory interface {
	// Check decodes spec's config block strictly and validates it without
	// building anything.
	Check(spec *config.HandlerSpec) error
	// New decodes, validates and builds the handler.
	New(spec *config.HandlerSpec, deps Deps) (Handler, error)
}

// TypedFactory returns a Factory for a handler configured by C: it starts
// from defaults() (a zero C when nil), decodes the spec into it, validates
// it and calls build.
func TypedFactory[C any, PC interface {
	*C
	Validator
}](defaults func() *C, build func(cfg *C, deps Deps) (Handler, error)) Factory {
	return &typedFactory[C, PC]{defaults: defaults, build: build}
}

type typedFactory[C any, PC interface {
	*C
	Validator
}] struct {
	defaults func() *C
	build    func(*C, Deps) (Handler, error)
}

func (f *typedFactory[C, PC]) decode(spec *config.HandlerSpec) (*C, error) {
	cfg := new(C)
	if f.defaults != nil {
		cfg = f.defaults()
	}
	if err := spec.Decode(cfg); err != nil {
		return nil, err
	}
	if err := PC(cfg).Validate(); err != nil {
		return nil, fmt.Errorf("%s: handler %s: %w", spec.Pos, spec.Type, err)
	}
	return cfg, nil
}

func (f *typedFactory[C, PC]) Check(spec *config.HandlerSpec) error {
	_, err := f.decode(spec)
	return err
}

func (f *typedFactory[C, PC]) New(spec *config.HandlerSpec, deps Deps) (Handler, error) {
	cfg, err := f.decode(spec)
	if err != nil {
		return nil, err
	}
	return f.build(cfg, deps)
}

// Registry maps handler type names, and their aliases, to factories: it is
// the one place that knows them. It is a value: build one with NewRegistry
// (tests) or DefaultRegistry (every kpipe handler). It is safe for
// concurrent use.
type Registry struct {
	*config.Components[*config.HandlerSpec, Deps, Handler]
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{config.NewComponents[*config.HandlerSpec, Deps, Handler]("handler", ErrUnknownHandler, ErrDuplicateHandler,
		func(s *config.HandlerSpec) string { return s.Type },
		func(s *config.HandlerSpec) string { return s.Pos.String() })}
}

// DefaultRegistry returns a registry holding transform, validation, lookup
// and delta_writer, the latter also under SPEC.md's Python path
// (DeltaWriterAlias). Every call returns the same registry; it must not be
// changed.
func DefaultRegistry() *Registry { return defaultRegistry() }

var defaultRegistry = sync.OnceValue(func() *Registry {
	r := NewRegistry()
	r.MustRegister(TypeTransform, transformFactory)
	r.MustRegister(TypeValidation, validationFactory)
	r.MustRegister(TypeLookup, lookupFactory)
	r.MustRegister(TypeDeltaWriter, deltaWriterFactory, DeltaWriterAlias)
	return r
})

// Handler type names of DefaultRegistry.
const (
	TypeTransform   = "transform"
	TypeValidation  = "validation"
	TypeLookup      = "lookup"
	TypeDeltaWriter = "delta_writer"
	// DeltaWriterAlias is the name SPEC.md gives the Delta writer: its
	// Python path.
	DeltaWriterAlias = "kafka_pipeline.plugins.handlers.delta_writer:DeltaTableWriter"
)

// Errors of Register and lookups by name.
var (
	// ErrUnknownHandler is wrapped by errors about a handler type no factory
	// is registered for.
	ErrUnknownHandler = errors.New("unknown handler type")
	// ErrDuplicateHandler is returned by Register for a name already taken.
	ErrDuplicateHandler = errors.New("handler type already registered")
)

// New builds the handler spec describes.
func (r *Registry) New(spec *config.HandlerSpec, deps Deps) (Handler, error) {
	return r.Components.New(spec, deps.withDefaults())
}

// JSONGetter fetches a JSON object from an HTTP connection; *httpconn.Client
// implements it.
type JSONGetter interface {
	GetJSON(ctx context.Context, path string, query url.Values) (map[string]any, error)
}

// Deps are what factories build handlers with. Zero fields take defaults:
// a discarding logger, time.Now, fresh metrics on a private registry.
type Deps struct {
	// WorkerName labels metrics and names txn application ids.
	WorkerName string
	// Connections are the named HTTP connections lookups may use.
	Connections map[string]*config.Connection
	// Client, when set, returns the client of a named connection instead of
	// building a *httpconn.Client from Connections (tests).
	Client func(name string) (JSONGetter, error)
	// Metrics receives every collector update. Required outside tests.
	Metrics *metrics.Metrics
	// Logger is the worker's logger.
	Logger *slog.Logger
	// DataDir is the --data root: a table without a configured location
	// lives at DataDir/delta/<table_name>. A folder, or an s3:// URL
	// (the table is then s3://bucket/prefix/delta/<table_name>).
	DataDir string
	// FileMode and DirMode are the permissions of the files and folders a
	// local table writes (0: delta.DefaultFileMode, delta.DefaultDirMode).
	FileMode, DirMode fs.FileMode
	// TableDefs returns the definition (schema, partitioning, properties) of
	// a named table, used to create it when its location has no table yet.
	TableDefs func(name string) (delta.TableDef, error)
	// AfterDataFiles, when set, runs in every table commit between writing
	// the data files and committing the log entry (crash tests).
	AfterDataFiles func() error
	// Storage, when set, opens a table location instead of
	// delta.OpenLocation (tests inject failing storage).
	Storage func(location string) (delta.Storage, error)
	// Now is the processing clock (transform's ${CURRENT_TIMESTAMP}).
	Now func() time.Time
}

func (d Deps) withDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New(prometheus.NewRegistry())
	}
	return d
}
