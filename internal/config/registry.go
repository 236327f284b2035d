package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Registry maps the type names configuration files give components — a
// handler's type, a plugin's module — to the factories F that build them.
// An alias is another spelling of a name, such as the Python paths SPEC.md
// uses; the registry is the one place that knows both. pipeline.Registry
// (handlers) and plugin.Registry (plugins) are built on it.
//
// It is a value: build one with NewRegistry. It is safe for concurrent use.
type Registry[F any] struct {
	noun               string
	unknown, duplicate error

	mu        sync.RWMutex
	factories map[string]F
	aliases   map[string]string
}

// NewRegistry returns an empty registry of components called noun in its
// errors ("handler", "plugin"). Errors about a name nothing is registered
// under wrap unknown; Register's error for a name already taken wraps
// duplicate.
func NewRegistry[F any](noun string, unknown, duplicate error) *Registry[F] {
	return &Registry[F]{
		noun: noun, unknown: unknown, duplicate: duplicate,
		factories: make(map[string]F), aliases: make(map[string]string),
	}
}

// Register adds f under name and its aliases. It rejects an empty name or
// alias, a nil factory and a name or alias already registered.
func (r *Registry[F]) Register(name string, f F, aliases ...string) error {
	if name == "" {
		return fmt.Errorf("registering %s: empty name", r.noun)
	}
	if isNil(f) {
		return fmt.Errorf("registering %s %q: nil factory", r.noun, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range append([]string{name}, aliases...) {
		if n == "" {
			return fmt.Errorf("registering %s %q: empty alias", r.noun, name)
		}
		_, taken := r.factories[n]
		if _, alias := r.aliases[n]; taken || alias {
			return fmt.Errorf("registering %s %q: %w", r.noun, n, r.duplicate)
		}
	}
	r.factories[name] = f
	for _, a := range aliases {
		r.aliases[a] = name
	}
	return nil
}

// MustRegister is Register that panics on error, for init-time
// registration.
func (r *Registry[F]) MustRegister(name string, f F, aliases ...string) {
	if err := r.Register(name, f, aliases...); err != nil {
		panic(err)
	}
}

// Names returns the registered names (not their aliases), sorted.
func (r *Registry[F]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.factories))
	for n := range r.factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Resolve returns the registered name that name stands for: itself, or the
// name it is an alias of. For an unknown name the error wraps the
// registry's unknown sentinel and suggests the nearest registered name.
func (r *Registry[F]) Resolve(name string) (string, error) {
	n, _, err := r.Lookup(name)
	return n, err
}

// Lookup is Resolve that also returns the factory.
func (r *Registry[F]) Lookup(name string) (string, F, error) {
	r.mu.RLock()
	if a, ok := r.aliases[name]; ok {
		name = a
	}
	f, ok := r.factories[name]
	r.mu.RUnlock()
	if ok {
		return name, f, nil
	}
	names := r.Names()
	hint := " (known: " + strings.Join(names, ", ") + ")"
	if s := nearest(name, names); s != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", s)
	}
	var zero F
	return "", zero, fmt.Errorf("%w %q%s", r.unknown, name, hint)
}

func isNil(f any) bool {
	if f == nil {
		return true
	}
	switch v := reflect.ValueOf(f); v.Kind() {
	case reflect.Func, reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Chan:
		return v.IsNil()
	}
	return false
}

// Validator is implemented by component configurations: Validate checks
// the decoded values and joins every problem it finds with errors.Join.
type Validator interface {
	Validate() error
}

// Checker is what Load checks one kind of component against: the registry
// of its factories (pipeline.Registry for handlers, plugin.Registry for
// plugins).
type Checker[S any] interface {
	// Resolve returns the registered name a type name as written stands
	// for, or an error saying it is unknown.
	Resolve(name string) (string, error)
	// Check decodes the component's config block strictly and validates
	// it, building nothing.
	Check(spec S) error
}

// Builder builds one kind of component from its spec S (a handler's or a
// plugin's configuration): Check decodes the spec's config block strictly
// and validates it without building anything; New decodes, validates and
// builds it with deps D.
type Builder[S, D, T any] interface {
	Check(spec S) error
	New(spec S, deps D) (T, error)
}

// Components is a Registry of Builders that checks and builds specs, the
// shape of both pipeline.Registry and plugin.Registry: kind names the type
// a spec asks for, where says where the spec is written, for errors.
type Components[S, D, T any] struct {
	*Registry[Builder[S, D, T]]
	kind, where func(S) string
}

// NewComponents returns an empty Components (see NewRegistry for noun,
// unknown and duplicate).
func NewComponents[S, D, T any](noun string, unknown, duplicate error, kind, where func(S) string) *Components[S, D, T] {
	return &Components[S, D, T]{Registry: NewRegistry[Builder[S, D, T]](noun, unknown, duplicate), kind: kind, where: where}
}

func (c *Components[S, D, T]) builder(spec S) (Builder[S, D, T], error) {
	_, b, err := c.Lookup(c.kind(spec))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.where(spec), err)
	}
	return b, nil
}

// Check decodes and validates spec's config block with its builder,
// without building it: config.Load runs it on every handler and plugin.
func (c *Components[S, D, T]) Check(spec S) error {
	b, err := c.builder(spec)
	if err != nil {
		return err
	}
	return b.Check(spec)
}

// New builds the component spec describes.
func (c *Components[S, D, T]) New(spec S, deps D) (T, error) {
	var zero T
	b, err := c.builder(spec)
	if err != nil {
		return zero, err
	}
	v, err := b.New(spec, deps)
	if err != nil {
		return zero, fmt.Errorf("%s: building %s %s: %w", c.where(spec), c.noun, c.kind(spec), err)
	}
	return v, nil
}
