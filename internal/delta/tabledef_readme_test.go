package delta

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestREADMEDocumentsTableDefFields: every yaml field of a table
// definition (tableDefFile, columnDef) is named in the README's "Table
// definition" section.
func TestREADMEDocumentsTableDefFields(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "### Table definition")
	if !ok {
		t.Fatal(`README.md has no "### Table definition" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n#")
	for _, typ := range []reflect.Type{reflect.TypeOf(tableDefFile{}), reflect.TypeOf(columnDef{})} {
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !strings.Contains(sec, "`"+name+"`") {
				t.Errorf("README.md's table definition section does not document %s field %q", typ, name)
			}
		}
	}
}
