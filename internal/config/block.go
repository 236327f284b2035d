package config

import (
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// Block is a component's config: block — a handler's or a plugin's — kept
// as YAML by Load and decoded strictly by the component's factory with
// Decode, so that the component's package, not this one, owns its fields,
// defaults and rules.
type Block struct {
	node ast.Node
	file string
}

// UnmarshalYAML keeps the block's node for Decode.
func (b *Block) UnmarshalYAML(node ast.Node) error {
	b.node = node
	return nil
}

// IsZero reports whether the block is absent or null.
func (b Block) IsZero() bool {
	if b.node == nil {
		return true
	}
	_, isNull := b.node.(*ast.NullNode)
	return isNull
}

// Pos is where the block starts.
func (b Block) Pos() Pos {
	p := nodePos(b.node)
	p.File = b.file
	return p
}

// Decode decodes the block into v strictly; an absent block leaves v as it
// is. Set v's defaults before calling it. Every unknown field is reported,
// each with the file, line and column it is at and the nearest valid name,
// in one *Error; to find them all, Decode drops each from the kept node, so
// a block that failed reports only its remaining problems the next time.
func (b Block) Decode(v any) error {
	if b.IsZero() {
		return nil
	}
	var probs problems
	decodeReporting(&probs, b.file, b.node, v)
	return probs.err()
}

// Field returns the string value of a top-level key of the block, and
// whether it is there.
func (b Block) Field(key string) (string, Pos, bool) {
	pairs, err := mappingPairs(b.node)
	if err != nil {
		return "", Pos{}, false
	}
	for _, kv := range pairs {
		if keyString(kv) != key {
			continue
		}
		var s string
		if strict(kv.Value, &s) != nil {
			return "", Pos{}, false
		}
		p := nodePos(kv.Value)
		p.File = b.file
		return s, p, true
	}
	return "", Pos{}, false
}

// MarshalYAML writes the block as written; values of keys that look like
// secrets are redacted.
func (b Block) MarshalYAML() (any, error) {
	if b.IsZero() {
		return nil, nil
	}
	var cfg any
	if err := yaml.NodeToValue(b.node, &cfg, yaml.UseOrderedMap()); err != nil {
		return nil, err
	}
	return redactSecrets(cfg), nil
}

// The helpers below are for components whose blocks take keys a struct
// cannot name (such as the task_trigger plugin's on_<status> blocks): their
// UnmarshalYAML walks the mapping with Entries, decodes values with
// DecodeNode, and reports problems with ErrorAt or UnknownField, which
// Decode reports at their file:line:column.

// Entry is one key of a YAML mapping and its value.
type Entry struct {
	// Key is the key as a string.
	Key string
	// KeyNode and Value are the key's and the value's nodes.
	KeyNode, Value ast.Node
}

// Entries returns the entries of a mapping node, in file order; a null
// node has none.
func Entries(node ast.Node) ([]Entry, error) {
	pairs, err := mappingPairs(node)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(pairs))
	for i, kv := range pairs {
		out[i] = Entry{Key: keyString(kv), KeyNode: kv.Key, Value: kv.Value}
	}
	return out, nil
}

// DecodeNode decodes node into v strictly, refusing unknown fields.
func DecodeNode(node ast.Node, v any) error { return strict(node, v) }

// ErrorAt is a problem at node.
func ErrorAt(node ast.Node, format string, args ...any) error {
	return errAt(node, format, args...)
}

// UnknownField is the problem of the unknown key name at node, suggesting
// the nearest of valid.
func UnknownField(node ast.Node, name string, valid []string) error {
	return unknownField(node, name, valid)
}

// maxUnknownFields bounds how many unknown fields of one document are
// reported.
const maxUnknownFields = 50

// decodeReporting decodes node strictly into v, adding problems for file.
// An unknown field is reported, dropped from the node, and decoding goes
// on, so that every unknown field is reported at once and the rest is
// still checked; ok is false when v could not be decoded at all.
func decodeReporting(probs *problems, file string, node ast.Node, v any) (ok bool) {
	fields := fieldsOf(v)
	for range maxUnknownFields {
		err := strict(node, v)
		if err == nil {
			return true
		}
		ce := problemsFrom(file, err, fields)
		probs.addErr(file, ce)
		p := ce.Problems[0].Pos
		if !strings.HasPrefix(ce.Problems[0].Msg, "unknown field") || !dropKeyAt(node, p.Line, p.Column) {
			return false
		}
	}
	return false
}
