package plugin

import (
	"errors"
	"fmt"
	"sync"

	"kpipe/internal/config"
)

// Factory builds one kind of plugin from its configuration, as
// pipeline.Factory builds a handler.
type Factory interface {
	// Check decodes p's config block strictly and validates it without
	// building anything.
	Check(p *config.Plugin) error
	// New decodes, validates and builds the plugin.
	New(p *config.Plugin, deps Deps) (Plugin, error)
}

// FactoryFunc is the Factory of a plugin that takes no config block: Check
// accepts any, New calls the function.
type FactoryFunc func(p *config.Plugin, deps Deps) (Plugin, error)

// Check implements Factory.
func (FactoryFunc) Check(*config.Plugin) error { return nil }

// New implements Factory.
func (f FactoryFunc) New(p *config.Plugin, deps Deps) (Plugin, error) { return f(p, deps) }

// Errors of the registry.
var (
	// ErrUnknownPlugin is wrapped by errors about a plugin kind no factory is
	// registered for.
	ErrUnknownPlugin = errors.New("unknown plugin kind")
	// ErrDuplicatePlugin is returned by Register for a kind already taken.
	ErrDuplicatePlugin = errors.New("plugin kind already registered")
)

// Registry maps plugin kinds, and the modules that name them
// (config.Plugin.Module), to factories. It is a value: tests build one with
// NewRegistry, kpipe uses DefaultRegistry. It is safe for concurrent use.
type Registry struct {
	*config.Registry[Factory]
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{config.NewRegistry[Factory]("plugin", ErrUnknownPlugin, ErrDuplicatePlugin)}
}

var (
	defaultOnce sync.Once
	defaultReg  *Registry
)

// DefaultRegistry returns the registry of kpipe's plugins: task_trigger,
// also under SPEC.md's module name. Every call returns the same registry;
// it must not be changed.
func DefaultRegistry() *Registry {
	defaultOnce.Do(func() {
		r := NewRegistry()
		r.MustRegister(KindTaskTrigger, NewTaskTriggerFactory(), TaskTriggerModule)
		defaultReg = r
	})
	return defaultReg
}

func (r *Registry) factory(p *config.Plugin) (Factory, error) {
	_, f, err := r.Lookup(p.Kind())
	if err != nil {
		return nil, fmt.Errorf("plugin %q (%s): %w", p.Name, p.File, err)
	}
	return f, nil
}

// Check decodes and validates p's config block with its factory, without
// building the plugin: config.Load runs it on every plugin
// (config.WithPlugins).
func (r *Registry) Check(p *config.Plugin) error {
	f, err := r.factory(p)
	if err != nil {
		return err
	}
	return f.Check(p)
}

// New builds the plugin p describes.
func (r *Registry) New(p *config.Plugin, deps Deps) (Plugin, error) {
	f, err := r.factory(p)
	if err != nil {
		return nil, err
	}
	pl, err := f.New(p, deps.withDefaults())
	if err != nil {
		return nil, fmt.Errorf("plugin %q (%s): %w", p.Name, p.File, err)
	}
	return pl, nil
}
