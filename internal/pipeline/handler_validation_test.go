package pipeline

import (
	"strings"
	"testing"
)

// Validation messages name the JSON type of both sides, so that the string
// "32513" is not reported as "is 32513, want 32513".
func TestValidationMessagesShowJSONTypes(t *testing.T) {
	min1 := 1.0
	v, err := NewValidation(&ValidationConfig{FieldRules: map[string]*FieldRule{
		"task_id":     {Equals: int64(32513)},
		"task_status": {In: []any{"assigned", "completed"}},
		"count":       {Min: &min1},
		"name":        {Type: "string"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"string for a number", map[string]any{"task_id": "32513"}, `field "task_id": is the string "32513", want the number 32513`},
		{"number for a string", map[string]any{"task_status": int64(3)}, `field "task_status": is the number 3, want one of the string "assigned", the string "completed"`},
		{"below the minimum", map[string]any{"count": int64(0)}, `field "count": is the number 0, below the minimum 1`},
		{"boolean for a string", map[string]any{"name": true}, `field "name": is the boolean true, want a string`},
		{"object for a number", map[string]any{"task_id": map[string]any{"a": int64(1)}}, `field "task_id": is an object of 1 fields, want the number 32513`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Handle(t.Context(), &Event{Fields: tt.fields})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}
	if _, err := v.Handle(t.Context(), &Event{Fields: map[string]any{"task_id": int64(32513), "task_status": "assigned", "count": int64(2), "name": "x"}}); err != nil {
		t.Fatalf("a valid event: %v", err)
	}
}
