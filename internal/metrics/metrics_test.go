package metrics

import (
	"strings"
	"testing"
)

func TestCappedLabel(t *testing.T) {
	c := NewCappedLabel(2)
	for _, tc := range []struct{ in, want string }{
		{"assigned", "assigned"},
		{"", OtherLabel},
		{"\xff", OtherLabel},
		{strings.Repeat("x", 65), OtherLabel},
		{"completed", "completed"},
		{"reopened", OtherLabel}, // past the cap
		{"assigned", "assigned"}, // seen before
	} {
		if got := c.Value(tc.in); got != tc.want {
			t.Errorf("Value(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if d := NewCappedLabel(0); d.max != DefaultMaxLabelValues {
		t.Errorf("default cap %d, want %d", d.max, DefaultMaxLabelValues)
	}
}
