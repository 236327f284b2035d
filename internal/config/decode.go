package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// strict decodes node into v, refusing unknown fields.
func strict(node ast.Node, v any) error {
	return yaml.NodeToValue(node, v, yaml.DisallowUnknownField())
}

// nodePos is where node starts (file left empty).
func nodePos(node ast.Node) Pos {
	if node == nil || node.GetToken() == nil {
		return Pos{}
	}
	p := node.GetToken().Position
	return Pos{Line: p.Line, Column: p.Column}
}

// nodeError is a problem found while decoding a node; the loader adds the
// file name.
type nodeError struct {
	pos Pos
	msg string
}

func (e *nodeError) Error() string { return fmt.Sprintf("%d:%d: %s", e.pos.Line, e.pos.Column, e.msg) }

func errAt(node ast.Node, format string, args ...any) error {
	return &nodeError{pos: nodePos(node), msg: fmt.Sprintf(format, args...)}
}

// mappingPairs returns the key/value pairs of a mapping node.
func mappingPairs(node ast.Node) ([]*ast.MappingValueNode, error) {
	switch n := node.(type) {
	case *ast.MappingNode:
		return n.Values, nil
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{n}, nil
	case *ast.NullNode, nil:
		return nil, nil
	default:
		return nil, errAt(node, "expected a mapping, found %s", node.Type())
	}
}

func keyString(kv *ast.MappingValueNode) string {
	if s, ok := kv.Key.(*ast.StringNode); ok {
		return s.Value
	}
	return strings.TrimSpace(kv.Key.String())
}

// unknownField reports key as unknown, suggesting the nearest of valid.
func unknownField(node ast.Node, key string, valid []string) error {
	msg := fmt.Sprintf("unknown field %q", key)
	if s := nearest(key, valid); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return errAt(node, "%s", msg)
}

// UnmarshalYAML keeps a handler's type and its config block; the block is
// decoded strictly later, by the handler, through Decode.
func (h *HandlerSpec) UnmarshalYAML(node ast.Node) error {
	pairs, err := mappingPairs(node)
	if err != nil {
		return err
	}
	h.Pos = nodePos(node)
	var typeNode ast.Node
	for _, kv := range pairs {
		switch key := keyString(kv); key {
		case "type":
			if err := strict(kv.Value, &h.TypeAsWritten); err != nil {
				return err
			}
			typeNode = kv.Value
		case "config":
			h.config.node = kv.Value
		default:
			return unknownField(kv.Key, key, []string{"type", "config"})
		}
	}
	h.Type = h.TypeAsWritten
	h.typePos = h.Pos
	if typeNode != nil {
		h.typePos = nodePos(typeNode)
	}
	return nil
}

// Decode decodes the handler's config block into v strictly: an unknown
// field is an error naming file, line and column.
func (h *HandlerSpec) Decode(v any) error { return h.config.Decode(v) }

// Field returns the string value of a top-level key of the config block,
// and whether it is there.
func (h *HandlerSpec) Field(key string) (string, Pos, bool) { return h.config.Field(key) }

// MarshalYAML writes the handler in its file form; values of keys that look
// like secrets are redacted.
func (h *HandlerSpec) MarshalYAML() (any, error) {
	m := yaml.MapSlice{{Key: "type", Value: h.Type}}
	if !h.config.IsZero() {
		cfg, err := h.config.MarshalYAML()
		if err != nil {
			return nil, err
		}
		m = append(m, yaml.MapItem{Key: "config", Value: cfg})
	}
	return m, nil
}

var secretKeys = []string{"token", "password", "secret", "api_key", "apikey", "credential"}

func isSecretKey(k string) bool {
	lk := strings.ToLower(k)
	for _, s := range secretKeys {
		if strings.Contains(lk, s) {
			return true
		}
	}
	return false
}

func redactSecrets(v any) any {
	switch t := v.(type) {
	case yaml.MapSlice:
		out := make(yaml.MapSlice, len(t))
		for i, item := range t {
			out[i] = item
			if _, isStr := item.Value.(string); isStr && isSecretKey(fmt.Sprint(item.Key)) {
				out[i].Value = redacted
			} else {
				out[i].Value = redactSecrets(item.Value)
			}
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			if _, isStr := val.(string); isStr && isSecretKey(k) {
				out[k] = redacted
			} else {
				out[k] = redactSecrets(val)
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, val := range t {
			out[i] = redactSecrets(val)
		}
		return out
	default:
		return v
	}
}

// UnmarshalYAML applies the worker defaults, then decodes strictly.
func (w *Worker) UnmarshalYAML(node ast.Node) error {
	type plain Worker
	p := plain{BatchSize: DefaultBatchSize, MaxMessageBytes: DefaultMaxMessageBytes, MaxNestingDepth: DefaultMaxNestingDepth, PollsInFlight: DefaultPollsInFlight, FetchMaxBytes: DefaultFetchMaxBytes, FetchMaxPartitionBytes: DefaultFetchMaxPartitionBytes}
	if err := strict(node, &p); err != nil {
		return err
	}
	*w = Worker(p)
	w.pos = nodePos(node)
	return nil
}

// UnmarshalYAML applies the connection defaults, then decodes strictly.
func (c *Connection) UnmarshalYAML(node ast.Node) error {
	type plain Connection
	p := plain{
		AuthType:             "none",
		TimeoutSeconds:       30,
		MaxRetries:           3,
		RetryBackoffBase:     2,
		RetryBackoffMax:      60,
		RetryAfterMaxSeconds: 60,
		MaxConcurrency:       32,
	}
	if err := strict(node, &p); err != nil {
		return err
	}
	if p.AuthType == "" {
		p.AuthType = "none"
	}
	*c = Connection(p)
	c.pos = nodePos(node)
	return nil
}

// problemsFrom turns a decoding error into problems of file, suggesting the
// nearest known field for an unknown one.
func problemsFrom(file string, err error, fields []string) *Error {
	var ne *nodeError
	if errors.As(err, &ne) {
		p := ne.pos
		p.File = file
		return &Error{Problems: []*Problem{{Pos: p, Msg: ne.msg}}}
	}
	var ye yaml.Error
	if errors.As(err, &ye) {
		p := Pos{File: file}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			p.Line, p.Column = tk.Position.Line, tk.Position.Column
		}
		msg := ye.GetMessage()
		var uf *yaml.UnknownFieldError
		if errors.As(err, &uf) {
			name := strings.TrimSpace(strings.TrimPrefix(msg, "unknown field"))
			if unq, err := strconv.Unquote(name); err == nil {
				name = unq
			}
			msg = fmt.Sprintf("unknown field %q", name)
			if s := nearest(name, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
		}
		return &Error{Problems: []*Problem{{Pos: p, Msg: msg}}}
	}
	return &Error{Problems: []*Problem{{Pos: Pos{File: file}, Msg: err.Error()}}}
}
