package plugin

import (
	"errors"
	"fmt"
	"sync"

	"kpipe/internal/config"
)

// Factory builds one kind of plugin from its configuration, as
// pipeline.Factory builds a handler: Check decodes p's config block
// strictly and validates it without building anything; New decodes,
// validates and builds the plugin.
type Factory = config.Builder[*config.Plugin, Deps, Plugin]

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
	*config.Components[*config.Plugin, Deps, Plugin]
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{config.NewComponents[*config.Plugin, Deps, Plugin]("plugin", ErrUnknownPlugin, ErrDuplicatePlugin,
		(*config.Plugin).Kind,
		func(p *config.Plugin) string { return fmt.Sprintf("plugin %q (%s)", p.Name, p.File) })}
}

// DefaultRegistry returns the registry of kpipe's plugins: task_trigger,
// also under SPEC.md's module name. Every call returns the same registry;
// it must not be changed.
func DefaultRegistry() *Registry { return defaultRegistry() }

var defaultRegistry = sync.OnceValue(func() *Registry {
	r := NewRegistry()
	r.MustRegister(KindTaskTrigger, NewTaskTriggerFactory(), TaskTriggerModule)
	return r
})

// New builds the plugin p describes.
func (r *Registry) New(p *config.Plugin, deps Deps) (Plugin, error) {
	return r.Components.New(p, deps.withDefaults())
}
