package config

import (
	"errors"
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	errUnknown, errDup := errors.New("unknown thing"), errors.New("thing already registered")
	r := NewRegistry[func() int]("thing", errUnknown, errDup)
	r.MustRegister("alpha", func() int { return 1 }, "a.py:Alpha")
	r.MustRegister("beta", func() int { return 2 })
	for _, tc := range []struct {
		name    string
		aliases []string
		f       func() int
		want    error
	}{
		{"alpha", nil, func() int { return 0 }, errDup},
		{"gamma", []string{"a.py:Alpha"}, func() int { return 0 }, errDup},
		{"a.py:Alpha", nil, func() int { return 0 }, errDup},
	} {
		if err := r.Register(tc.name, tc.f, tc.aliases...); !errors.Is(err, tc.want) {
			t.Errorf("Register(%q, %v): got %v, want %v", tc.name, tc.aliases, err, tc.want)
		}
	}
	if err := r.Register("", func() int { return 0 }); err == nil {
		t.Error("empty name accepted")
	}
	if err := r.Register("delta", nil); err == nil {
		t.Error("nil factory accepted")
	}
	if got := strings.Join(r.Names(), ","); got != "alpha,beta" {
		t.Errorf("Names() = %s", got)
	}
	name, f, err := r.Lookup("a.py:Alpha")
	if err != nil || name != "alpha" || f() != 1 {
		t.Errorf("Lookup(alias) = %q, %v", name, err)
	}
	if _, err := r.Resolve("alpah"); !errors.Is(err, errUnknown) || err.Error() != `unknown thing "alpah" (did you mean "alpha"?)` {
		t.Errorf("Resolve(misspelt) = %v", err)
	}
	if _, err := r.Resolve("zzzzzzzz"); err == nil || err.Error() != `unknown thing "zzzzzzzz" (known: alpha, beta)` {
		t.Errorf("Resolve(unknown) = %v", err)
	}
}
