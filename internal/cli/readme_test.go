package cli

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"kpipe/internal/config"
	"kpipe/internal/kafka"
	"kpipe/internal/pipeline"
	"kpipe/internal/plugin"
)

// readmeSection returns the README's section under the heading that starts
// with heading, up to the next heading of any level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "#") {
			if in {
				break
			}
			in = strings.HasPrefix(strings.TrimLeft(l, "# "), heading)
			continue
		}
		if in {
			out = append(out, l)
		}
	}
	if !in && len(out) == 0 {
		t.Fatalf("README.md has no section %q", heading)
	}
	return strings.Join(out, "\n")
}

// yamlFields are the yaml names of the fields of struct type typ, the
// structs it holds included (through pointers, slices and maps).
func yamlFields(typ reflect.Type, seen map[reflect.Type]bool) []string {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || seen[typ] {
		return nil
	}
	seen[typ] = true
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, name)
		if f.Type.PkgPath() == "" || strings.HasPrefix(f.Type.PkgPath(), "kpipe/") {
			out = append(out, yamlFields(f.Type, seen)...)
		}
	}
	return out
}

// documented reports whether the section names field in code: `field`,
// or as part of a dotted name (`config.field`, `field.sub`).
func documented(section, field string) bool {
	return strings.Contains(section, "`"+field+"`") || strings.Contains(section, "."+field+"`") ||
		strings.Contains(section, "`"+field+".") || strings.Contains(section, "."+field+".")
}

// TestREADMEDocumentsEveryField: every yaml field of the configuration
// structs is named in its README section, so that the README stays true
// when a field is added.
func TestREADMEDocumentsEveryField(t *testing.T) {
	for _, tt := range []struct {
		section string
		v       any
	}{
		{"Plugin (", config.Plugin{}},
		{"Plugin (", plugin.TaskTriggerConfig{}},
		{"Worker (", config.Worker{}},
		{"Connection (", config.Connection{}},
		{"`transform` config", pipeline.TransformConfig{}},
		{"`validation` config", pipeline.ValidationConfig{}},
		{"`lookup` config", pipeline.LookupConfig{}},
		{"`delta_writer` config", pipeline.DeltaWriterConfig{}},
		{"Topics (", kafka.TopicSpec{}},
	} {
		sec := readmeSection(t, tt.section)
		typ := reflect.TypeOf(tt.v)
		fields := yamlFields(typ, map[reflect.Type]bool{})
		if len(fields) == 0 {
			t.Fatalf("%s has no yaml fields", typ)
		}
		for _, f := range fields {
			if !documented(sec, f) {
				t.Errorf("README.md section %q does not document %s field %q", tt.section, typ, f)
			}
		}
	}
}
