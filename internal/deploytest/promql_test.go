package deploytest

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// selector is one instant or range vector selector of a PromQL expression:
// a metric name and the label names its matchers use.
type selector struct {
	name   string
	labels []string
}

// nonMetrics are identifiers that are not metric names even when no "("
// follows them: aggregation operators (which may take "by (...)" first),
// binary operators and modifiers.
var nonMetrics = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
}

// labelLists are keywords followed by a parenthesised list of label names.
var labelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// parsedExpr is what scanPromQL finds in an expression.
type parsedExpr struct {
	selectors []selector
	// grouping holds the label names of by, without, on, ignoring and
	// group_left/right lists.
	grouping []string
}

// scanPromQL finds the selectors and grouping labels of a PromQL expression.
// It is a scanner, not a parser: promtool judges syntax, this only has to
// find names in expressions that promtool accepts.
func scanPromQL(expr string) (parsedExpr, error) {
	var p parsedExpr
	s := expr
	i := 0
	skipSpace := func() {
		for i < len(s) && strings.ContainsRune(" \t\r\n", rune(s[i])) {
			i++
		}
	}
	ident := func() string {
		j := i
		for i < len(s) && isIdentByte(s[i], i > j) {
			i++
		}
		return s[j:i]
	}
	// skipString skips a quoted string starting at s[i] and returns its text.
	skipString := func() (string, error) {
		q := s[i]
		j := i + 1
		for j < len(s) && s[j] != q {
			if s[j] == '\\' && q != '`' {
				j++
			}
			j++
		}
		if j >= len(s) {
			return "", fmt.Errorf("unterminated string at %d in %q", i, expr)
		}
		str := s[i+1 : j]
		i = j + 1
		return str, nil
	}
	// matchers reads {name op "value", ...} starting at s[i] == '{'.
	matchers := func() ([]string, error) {
		var names []string
		i++
		for {
			skipSpace()
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated matchers in %q", expr)
			}
			switch c := s[i]; {
			case c == '}':
				i++
				return names, nil
			case c == ',':
				i++
			case c == '"' || c == '\'' || c == '`':
				if _, err := skipString(); err != nil {
					return nil, err
				}
			case c == '=' || c == '!' || c == '~':
				i++
			case isIdentByte(c, false):
				names = append(names, ident())
			default:
				return nil, fmt.Errorf("unexpected %q in matchers of %q", c, expr)
			}
		}
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			if _, err := skipString(); err != nil {
				return p, err
			}
		case c == '[':
			// Range or subquery: durations and steps only.
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return p, fmt.Errorf("unterminated range in %q", expr)
			}
			i += j + 1
		case c >= '0' && c <= '9' || c == '.':
			// Numbers and durations: 10, 0.95, 1e-9, 5m.
			for i < len(s) && (isIdentByte(s[i], true) || s[i] == '.' ||
				(s[i] == '-' || s[i] == '+') && (s[i-1] == 'e' || s[i-1] == 'E')) {
				i++
			}
		case c == '{':
			// {__name__=~"..."} would hide the metric names from the checks.
			return p, fmt.Errorf("selector without a metric name in %q", expr)
		case isIdentByte(c, false):
			name := ident()
			skipSpace()
			next := byte(0)
			if i < len(s) {
				next = s[i]
			}
			switch {
			case labelLists[name]:
				if next != '(' {
					break // group_left without labels
				}
				j := strings.IndexByte(s[i:], ')')
				if j < 0 {
					return p, fmt.Errorf("unterminated %s list in %q", name, expr)
				}
				for _, l := range strings.Split(s[i+1:i+j], ",") {
					if l = strings.TrimSpace(l); l != "" {
						p.grouping = append(p.grouping, l)
					}
				}
				i += j + 1
			case nonMetrics[name], next == '(':
				// Operator, keyword or function call.
			default:
				sel := selector{name: name}
				if next == '{' {
					names, err := matchers()
					if err != nil {
						return p, err
					}
					sel.labels = names
				}
				p.selectors = append(p.selectors, sel)
			}
		default:
			i++
		}
	}
	return p, nil
}

func isIdentByte(c byte, notFirst bool) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		notFirst && c >= '0' && c <= '9'
}

// grafanaBuiltins are Grafana's interval variables, replaced by durations so
// that promtool can parse the expression.
var grafanaBuiltins = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__range":         "1h",
}

// grafanaVar matches $var, ${var}, ${var:format} and [[var]].
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// expandGrafana replaces Grafana variables in expr: the interval built-ins by
// durations, template variables (which kpipe's dashboards use only inside
// =~ matchers) by ".*". It returns the names of the template variables.
func expandGrafana(expr string) (string, []string, error) {
	var vars []string
	var err error
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if strings.HasPrefix(name, "__") {
			d, ok := grafanaBuiltins[name]
			if !ok {
				err = fmt.Errorf("unknown Grafana built-in $%s in %q", name, expr)
			}
			return d
		}
		vars = append(vars, name)
		return ".*"
	})
	return out, vars, err
}

func TestScanPromQL(t *testing.T) {
	tests := []struct {
		name     string
		expr     string
		want     []selector
		grouping []string
	}{
		{
			name:     "aggregation with by and a range",
			expr:     `sum by (worker) (rate(itel_worker_messages_consumed_total{worker=~"a|b"}[5m]))`,
			want:     []selector{{"itel_worker_messages_consumed_total", []string{"worker"}}},
			grouping: []string{"worker"},
		},
		{
			name:     "quantile, binary operators and numbers",
			expr:     "histogram_quantile(0.95, sum by (le, table) (rate(x_bucket[5m]))) > 1e-3 and on (job) up == 0",
			want:     []selector{{name: "x_bucket"}, {name: "up"}},
			grouping: []string{"le", "table", "job"},
		},
		{
			name: "subquery, strings with braces, offset",
			expr: `min_over_time((sum(a{b="}{", c!~'x'}))[10m:1m]) - a offset 5m`,
			want: []selector{{"a", []string{"b", "c"}}, {name: "a"}},
		},
		{
			name:     "bare aggregation keyword first",
			expr:     "max without (partition) (kpipe_consumer_lag)",
			want:     []selector{{name: "kpipe_consumer_lag"}},
			grouping: []string{"partition"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scanPromQL(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got.selectors) != fmt.Sprint(tt.want) {
				t.Fatalf("selectors: got %v, want %v", got.selectors, tt.want)
			}
			if fmt.Sprint(got.grouping) != fmt.Sprint(tt.grouping) {
				t.Fatalf("grouping: got %v, want %v", got.grouping, tt.grouping)
			}
		})
	}
	if _, err := scanPromQL(`{job="x"}`); err == nil {
		t.Fatal("nameless selector: got no error")
	}
}

func TestExpandGrafana(t *testing.T) {
	got, vars, err := expandGrafana(`rate(x{worker=~"$worker",g=~"${group:regex}",h=~"[[h]]"}[$__rate_interval]) / increase(x[${__range}])`)
	if err != nil {
		t.Fatal(err)
	}
	want := `rate(x{worker=~".*",g=~".*",h=~".*"}[5m]) / increase(x[1h])`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if fmt.Sprint(vars) != "[worker group h]" {
		t.Fatalf("vars: got %v, want [worker group h]", vars)
	}
	if _, _, err := expandGrafana("x[$__unknown]"); err == nil {
		t.Fatal("unknown built-in: got no error")
	}
}
