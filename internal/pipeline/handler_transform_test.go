package pipeline

import (
	"testing"
)

// TestTransformDottedTarget: a dotted mapping key sets a field inside the
// object its parent path names, after the undotted mappings (which may
// replace that object), and does nothing without such an object.
func TestTransformDottedTarget(t *testing.T) {
	tr := NewTransform(&TransformConfig{Mappings: map[string]string{
		"task":               "task",
		"task.fetched_at":    "task_fetched_at",
		"missing.fetched_at": "task_fetched_at",
		"task_id.x":          "task_fetched_at",
	}}, nil)
	e := &Event{Fields: map[string]any{"task": map[string]any{"status": "assigned"}, "task_fetched_at": "f", "task_id": int64(1)}}
	if _, err := tr.Handle(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	task, _ := e.Fields["task"].(map[string]any)
	if task["fetched_at"] != "f" || task["status"] != "assigned" {
		t.Fatalf("task %v", e.Fields["task"])
	}
	if _, ok := e.Fields["missing"]; ok || e.Fields["task_id"] != int64(1) {
		t.Fatalf("fields %v", e.Fields)
	}
	for _, bad := range []string{".x", "x.", "a..b", " "} {
		c := &TransformConfig{Mappings: map[string]string{bad: "task"}}
		if c.Validate() == nil {
			t.Errorf("mapping key %q: no error", bad)
		}
	}
}
