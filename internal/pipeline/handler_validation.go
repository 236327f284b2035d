package pipeline

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"kpipe/internal/dlq"
	"kpipe/internal/jsonx"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// ValidationConfig configures the validation handler.
type ValidationConfig struct {
	// RequiredFields must be present and not null (dotted paths allowed).
	RequiredFields []string `yaml:"required_fields"`
	// FieldRules are checked on fields that are present and not null
	// (combine with required_fields to demand the field).
	FieldRules map[string]*FieldRule `yaml:"field_rules"`
	// SkipIf is an expr-lang expression over the event's fields; when it is
	// true the event is filtered: no row and no error record. Empty or null:
	// never skip.
	SkipIf *string `yaml:"skip_if"`
}

// FieldRule is the checks of one field; every set check must pass.
type FieldRule struct {
	// Equals: the value equals this (numbers compare by value, 40001 equals
	// 40001.0).
	Equals any `yaml:"equals"`
	// In: the value equals one of these.
	In []any `yaml:"in"`
	// Regex: the value is a string matching this RE2 expression.
	Regex string `yaml:"regex"`
	// Type: string, integer, number, boolean, object or array.
	Type string `yaml:"type"`
	// Min and Max bound a number (inclusive), or the length of a string or
	// array.
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
}

var validTypes = []string{"string", "integer", "number", "boolean", "object", "array"}

// Validate implements Validator.
func (c *ValidationConfig) Validate() error {
	var errs []error
	if len(c.RequiredFields) == 0 && len(c.FieldRules) == 0 && (c.SkipIf == nil || *c.SkipIf == "") {
		errs = append(errs, errors.New("validation needs required_fields, field_rules or skip_if"))
	}
	for i, f := range c.RequiredFields {
		if strings.TrimSpace(f) == "" {
			errs = append(errs, fmt.Errorf("required_fields[%d]: empty field name", i))
		}
	}
	for _, field := range sortedKeys(c.FieldRules) {
		r := c.FieldRules[field]
		if r == nil {
			errs = append(errs, fmt.Errorf("field_rules.%s: no rule", field))
			continue
		}
		if r.Equals == nil && r.In == nil && r.Regex == "" && r.Type == "" && r.Min == nil && r.Max == nil {
			errs = append(errs, fmt.Errorf("field_rules.%s: no check (want equals, in, regex, type, min or max)", field))
		}
		if r.Regex != "" {
			if _, err := regexp.Compile(r.Regex); err != nil {
				errs = append(errs, fmt.Errorf("field_rules.%s.regex: %w", field, err))
			}
		}
		if r.Type != "" && !contains(validTypes, r.Type) {
			errs = append(errs, fmt.Errorf("field_rules.%s.type: %q: want one of %s", field, r.Type, strings.Join(validTypes, ", ")))
		}
		if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
			errs = append(errs, fmt.Errorf("field_rules.%s: min %v is above max %v", field, *r.Min, *r.Max))
		}
	}
	if c.SkipIf != nil && *c.SkipIf != "" {
		if _, err := compileSkipIf(*c.SkipIf); err != nil {
			errs = append(errs, fmt.Errorf("skip_if: %w", err))
		}
	}
	return errors.Join(errs...)
}

func compileSkipIf(code string) (*vm.Program, error) {
	return expr.Compile(code, expr.Env(map[string]any{}), expr.AllowUndefinedVariables(), expr.AsBool())
}

// Validation checks required fields and field rules, and filters the events
// skip_if matches. A failing event goes to the error topic with class
// validation and the failed rule ("required.task_id", "task_id.equals").
type Validation struct {
	required []fieldPath
	rules    []compiledRule
	skipIf   *vm.Program
}

type compiledRule struct {
	field string
	path  fieldPath
	r     FieldRule
	in    []any
	re    *regexp.Regexp
}

var validationFactory = TypedFactory(nil, func(cfg *ValidationConfig, _ Deps) (Handler, error) {
	return NewValidation(cfg)
})

// NewValidation compiles cfg (regexes and skip_if, once).
func NewValidation(cfg *ValidationConfig) (*Validation, error) {
	v := &Validation{}
	for _, f := range cfg.RequiredFields {
		v.required = append(v.required, compilePath(f))
	}
	for _, field := range sortedKeys(cfg.FieldRules) {
		r := cfg.FieldRules[field]
		cr := compiledRule{field: field, path: compilePath(field), r: *r}
		cr.r.Equals = normalizeYAML(r.Equals)
		for _, e := range r.In {
			cr.in = append(cr.in, normalizeYAML(e))
		}
		if r.Regex != "" {
			re, err := regexp.Compile(r.Regex)
			if err != nil {
				return nil, fmt.Errorf("field_rules.%s.regex: %w", field, err)
			}
			cr.re = re
		}
		v.rules = append(v.rules, cr)
	}
	if cfg.SkipIf != nil && *cfg.SkipIf != "" {
		p, err := compileSkipIf(*cfg.SkipIf)
		if err != nil {
			return nil, fmt.Errorf("skip_if: %w", err)
		}
		v.skipIf = p
	}
	return v, nil
}

// Handle implements Handler.
func (v *Validation) Handle(_ context.Context, ev *Event) ([]*Event, error) {
	pass, err := v.check(ev)
	if !pass || err != nil {
		return nil, err
	}
	return []*Event{ev}, nil
}

// HandleBatch implements BatchHandler.
func (v *Validation) HandleBatch(_ context.Context, evs []*Event) ([]Result, error) {
	results := make([]Result, len(evs))
	for i, ev := range evs {
		pass, err := v.check(ev)
		if err != nil {
			results[i].Err = err
		} else if pass {
			results[i].Events = evs[i : i+1 : i+1]
		}
	}
	return results, nil
}

// check reports whether ev passes (false with a nil error: skipped).
func (v *Validation) check(ev *Event) (bool, error) {
	if v.skipIf != nil {
		out, err := expr.Run(v.skipIf, ev.Fields)
		if err != nil {
			return false, Errorf(dlq.ClassValidation, "skip_if", "evaluating skip_if: %w", err)
		}
		if b, _ := out.(bool); b {
			return false, nil
		}
	}
	for i := range v.required {
		f := &v.required[i]
		if val, ok := f.get(ev.Fields); !ok || val == nil {
			return false, Errorf(dlq.ClassValidation, "required."+f.full, "required field %q is missing", f.full)
		}
	}
	for i := range v.rules {
		if err := v.rules[i].check(ev.Fields); err != nil {
			return false, err
		}
	}
	return true, nil
}

func (cr *compiledRule) check(fields map[string]any) error {
	val, ok := cr.path.get(fields)
	if !ok || val == nil {
		return nil
	}
	fail := func(rule, format string, args ...any) error {
		return Errorf(dlq.ClassValidation, cr.field+"."+rule, "field %q: "+format, append([]any{cr.field}, args...)...)
	}
	if cr.r.Type != "" && !hasType(val, cr.r.Type) {
		return fail("type", "is %s, want %s %s", jsonValue(val), article(cr.r.Type), cr.r.Type)
	}
	if cr.r.Equals != nil && !valuesEqual(val, cr.r.Equals) {
		return fail("equals", "is %s, want %s", jsonValue(val), jsonValue(cr.r.Equals))
	}
	if cr.in != nil {
		found := false
		for _, e := range cr.in {
			if valuesEqual(val, e) {
				found = true
				break
			}
		}
		if !found {
			return fail("in", "is %s, want one of %s", jsonValue(val), jsonValues(cr.in))
		}
	}
	if cr.re != nil {
		s, ok := val.(string)
		if !ok {
			return fail("regex", "is %s, want a string", jsonValue(val))
		}
		if !cr.re.MatchString(s) {
			return fail("regex", "%q does not match %s", s, cr.re)
		}
	}
	if cr.r.Min != nil || cr.r.Max != nil {
		n, ok := measure(val)
		if !ok {
			return fail("min", "is %s, want a number, a string or an array", jsonValue(val))
		}
		if cr.r.Min != nil && n < *cr.r.Min {
			return fail("min", "is %s, below the minimum %v", jsonValue(val), *cr.r.Min)
		}
		if cr.r.Max != nil && n > *cr.r.Max {
			return fail("max", "is %s, above the maximum %v", jsonValue(val), *cr.r.Max)
		}
	}
	return nil
}

// Close implements Handler.
func (v *Validation) Close(context.Context) error { return nil }

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case int:
		return float64(n), true
	}
	return 0, false
}

func valuesEqual(a, b any) bool {
	if ai, ok := a.(int64); ok {
		if bi, ok := b.(int64); ok {
			return ai == bi
		}
	}
	if af, ok := toFloat(a); ok {
		bf, ok := toFloat(b)
		return ok && af == bf
	}
	switch av := a.(type) {
	case string:
		bv, ok := b.(string)
		return ok && av == bv
	case bool:
		bv, ok := b.(bool)
		return ok && av == bv
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func measure(v any) (float64, bool) {
	if f, ok := toFloat(v); ok {
		return f, true
	}
	switch t := v.(type) {
	case string:
		return float64(len([]rune(t))), true
	case []any:
		return float64(len(t)), true
	}
	return 0, false
}

func hasType(v any, want string) bool {
	got := jsonx.TypeName(v)
	return got == want || want == "number" && got == "integer"
}

// jsonValue describes a decoded JSON value with its JSON type, so that a
// message tells the string "40001" from the number 40001.
func jsonValue(v any) string {
	const most = 80
	switch t := v.(type) {
	case string:
		q := strconv.Quote(t)
		if len(q) > most {
			q = q[:most] + `…"`
		}
		return "the string " + q
	case int64, int, float64:
		return fmt.Sprintf("the number %v", t)
	case bool:
		return fmt.Sprintf("the boolean %v", t)
	case nil:
		return "null"
	case map[string]any:
		return fmt.Sprintf("an object of %d fields", len(t))
	case []any:
		return fmt.Sprintf("an array of %d values", len(t))
	}
	return fmt.Sprintf("a %T", v)
}

func jsonValues(vs []any) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = jsonValue(v)
	}
	return strings.Join(parts, ", ")
}

func article(typ string) string {
	switch typ {
	case "integer", "object", "array":
		return "an"
	}
	return "a"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

var (
	_ Handler      = (*Validation)(nil)
	_ BatchHandler = (*Validation)(nil)
)
