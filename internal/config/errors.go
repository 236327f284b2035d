package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Problem is one thing wrong with the configuration, and where.
type Problem struct {
	Pos Pos
	Msg string
}

func (p *Problem) Error() string {
	if p.Pos == (Pos{}) {
		return p.Msg
	}
	return p.Pos.String() + ": " + p.Msg
}

// Error is every problem found while loading the configuration; the loader
// reports them all at once instead of stopping at the first.
type Error struct {
	Problems []*Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	if len(lines) == 1 {
		return "configuration: " + lines[0]
	}
	return fmt.Sprintf("configuration has %d problems:\n  %s", len(lines), strings.Join(lines, "\n  "))
}

// Unwrap returns the problems, so errors.As finds each one.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// problems collects problems while loading.
type problems struct{ list []*Problem }

func (ps *problems) add(pos Pos, format string, args ...any) {
	ps.list = append(ps.list, &Problem{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// addErr adds err's problems: an *Error's list, a *MissingEnvError's
// variables, or err itself.
func (ps *problems) addErr(file string, err error) {
	var ce *Error
	var me *MissingEnvError
	switch {
	case errors.As(err, &ce):
		ps.list = append(ps.list, ce.Problems...)
	case errors.As(err, &me):
		for _, v := range me.Vars {
			ps.add(v.Pos, "environment variable %s is not set (set it, or write ${%s:default})", v.Name, v.Name)
		}
	default:
		ps.list = append(ps.list, &Problem{Pos: Pos{File: file}, Msg: err.Error()})
	}
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	sort.SliceStable(ps.list, func(i, j int) bool {
		a, b := ps.list[i].Pos, ps.list[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return &Error{Problems: ps.list}
}

// fieldsOf lists the YAML field names of v's struct type and of the structs
// it holds, for "did you mean" suggestions.
func fieldsOf(v any) []string {
	seen := map[reflect.Type]bool{}
	var names []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag != "" && tag != "-" {
				names = append(names, tag)
			}
			walk(f.Type)
		}
	}
	if v != nil {
		walk(reflect.TypeOf(v))
	}
	return names
}

// nearest returns the candidate closest to s by edit distance, if it is
// close enough to be a likely misspelling.
func nearest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if c == s {
			continue
		}
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
