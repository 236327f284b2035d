package config

import (
	"bytes"
	"fmt"
	"strings"
)

// CurrentTimestamp is the placeholder that is left in place by expansion:
// the transform handler replaces it with the processing time.
const CurrentTimestamp = "${CURRENT_TIMESTAMP}"

// LookupEnv looks up an environment variable, as os.LookupEnv does.
type LookupEnv func(name string) (string, bool)

// MissingVar is one ${VAR} without a value and without a default.
type MissingVar struct {
	Name string
	Pos  Pos
}

// MissingEnvError lists every ${VAR} that has no value and no default.
type MissingEnvError struct {
	Vars []MissingVar
}

func (e *MissingEnvError) Error() string {
	var b strings.Builder
	b.WriteString("environment variables not set: ")
	for i, v := range e.Vars {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", v.Name, v.Pos)
	}
	return b.String()
}

// Expand replaces ${VAR} and ${VAR:default} in data with values from lookup.
// ${CURRENT_TIMESTAMP} is kept for the transform handler, $${VAR} stands for
// a literal ${VAR}, and comments are left alone. Every variable without a
// value or a default is reported in one *MissingEnvError, with file as the
// name positions are given in.
func Expand(data []byte, file string, lookup LookupEnv) ([]byte, error) {
	if !bytes.Contains(data, []byte("${")) {
		return data, nil
	}
	var (
		out     = make([]byte, 0, len(data)+64)
		missing []MissingVar
		line    = 1
	)
	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		var ln []byte
		if nl < 0 {
			ln, data = data, nil
		} else {
			ln, data = data[:nl+1], data[nl+1:]
		}
		code, comment := splitComment(ln)
		out = expandLine(out, code, file, line, lookup, &missing)
		out = append(out, comment...)
		line++
	}
	if len(missing) > 0 {
		return nil, &MissingEnvError{Vars: missing}
	}
	return out, nil
}

func expandLine(out, ln []byte, file string, line int, lookup LookupEnv, missing *[]MissingVar) []byte {
	for i := 0; i < len(ln); {
		if ln[i] != '$' {
			out = append(out, ln[i])
			i++
			continue
		}
		// $${...} is an escaped literal ${...}.
		if bytes.HasPrefix(ln[i:], []byte("$${")) {
			out = append(out, '$')
			i += 2
			continue
		}
		if !bytes.HasPrefix(ln[i:], []byte("${")) {
			out = append(out, '$')
			i++
			continue
		}
		end := bytes.IndexByte(ln[i:], '}')
		if end < 0 {
			out = append(out, ln[i:]...)
			break
		}
		ref := string(ln[i+2 : i+end])
		name, def, hasDef := strings.Cut(ref, ":")
		switch {
		case !validVarName(name):
			out = append(out, ln[i:i+end+1]...)
		case "${"+ref+"}" == CurrentTimestamp:
			out = append(out, CurrentTimestamp...)
		default:
			if v, ok := lookup(name); ok && v != "" {
				out = append(out, v...)
			} else if hasDef {
				out = append(out, def...)
			} else {
				*missing = append(*missing, MissingVar{Name: name, Pos: Pos{File: file, Line: line, Column: i + 1}})
			}
		}
		i += end + 1
	}
	return out
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// splitComment splits a YAML line before a comment: a # at the start of the
// line or after white space, outside quotes.
func splitComment(ln []byte) (code, comment []byte) {
	var quote byte
	for i, c := range ln {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case (c == '\'' || c == '"') && opensScalar(ln[:i]):
			quote = c
		case c == '#' && (i == 0 || ln[i-1] == ' ' || ln[i-1] == '\t'):
			return ln[:i], ln[i:]
		}
	}
	return ln, nil
}

// opensScalar reports whether a quote after before starts a quoted scalar
// (rather than being an apostrophe inside a plain one).
func opensScalar(before []byte) bool {
	t := bytes.TrimRight(before, " \t")
	if len(t) == 0 {
		return true
	}
	switch t[len(t)-1] {
	case ':', '-', '[', '{', ',', '?':
		return true
	}
	return false
}
