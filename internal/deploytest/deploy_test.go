package deploytest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/prometheus/client_golang/prometheus"

	"kpipe/internal/metrics"
)

// repoRoot is the module root, seen from this package's directory.
const repoRoot = "../.."

var (
	alertsFile      = filepath.Join("deploy", "prometheus", "alerts.yml")
	alertsTestFile  = filepath.Join("deploy", "prometheus", "alerts_test.yml")
	prometheusFile  = filepath.Join("deploy", "prometheus", "prometheus.yml")
	dashboardsDir   = filepath.Join("deploy", "grafana", "dashboards")
	deployReadme    = filepath.Join("deploy", "README.md")
	targetLabels    = []string{"job", "instance"} // added by Prometheus at scrape time
	specAlertNames  = []string{"ItelPluginPublishFailures", "ItelWorkerConsumerLag", "ItelClaimXAPIErrors", "ItelDeltaWriteFailures", "ItelWorkerStopped"}
	extraAlertNames = []string{"KpipeErrorTopicGrowing", "KpipeDeltaStorageUnavailable"}
)

// promtool returns the path of promtool. Without it the test skips, or fails
// when CI is set: CI must run every test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	const msg = "promtool is not on PATH: install Debian's prometheus package (apt-get install prometheus)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so this test does not skip)")
	}
	t.Skip(msg)
	return ""
}

// runPromtool runs promtool in the repository root and fails the test with
// its output if it exits non-zero.
func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), promtool(t), args...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPromtool(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"check rules", []string{"check", "rules", alertsFile}},
		{"test rules", []string{"test", "rules", alertsTestFile}},
		{"check config", []string{"check", "config", prometheusFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			runPromtool(t, tt.args...)
		})
	}
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type alert struct {
	name, expr  string
	labels      map[string]string
	annotations map[string]string
}

func loadAlerts(t *testing.T) []alert {
	t.Helper()
	var f ruleFile
	if err := yaml.Unmarshal(readFile(t, alertsFile), &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var alerts []alert
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Fatalf("%s: group %s has a rule that is not an alert", alertsFile, g.Name)
			}
			alerts = append(alerts, alert{r.Alert, r.Expr, r.Labels, r.Annotations})
		}
	}
	return alerts
}

func TestAlerts(t *testing.T) {
	alerts := loadAlerts(t)
	readme := string(readFile(t, deployReadme))
	var names []string
	for _, a := range alerts {
		names = append(names, a.name)
		if s := a.labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", a.name, s)
		}
		for _, k := range []string{"summary", "description", "action", "runbook"} {
			if strings.TrimSpace(a.annotations[k]) == "" {
				t.Errorf("%s: no %s annotation", a.name, k)
			}
		}
		// The runbook annotation points at a "### <AlertName>" heading.
		if want := "deploy/README.md#" + strings.ToLower(a.name); a.annotations["runbook"] != want {
			t.Errorf("%s: runbook %q, want %q", a.name, a.annotations["runbook"], want)
		}
		if !strings.Contains(readme, "\n### "+a.name+"\n") {
			t.Errorf("%s: %s has no runbook heading \"### %s\"", a.name, deployReadme, a.name)
		}
	}
	for _, want := range append(slices.Clone(specAlertNames), extraAlertNames...) {
		if !slices.Contains(names, want) {
			t.Errorf("alert %s is missing from %s", want, alertsFile)
		}
	}
	wantSeverity := map[string]string{
		"ItelPluginPublishFailures": "warning", "ItelWorkerConsumerLag": "warning",
		"ItelClaimXAPIErrors": "critical", "ItelDeltaWriteFailures": "critical", "ItelWorkerStopped": "critical",
	}
	for _, a := range alerts {
		if w, ok := wantSeverity[a.name]; ok && a.labels["severity"] != w {
			t.Errorf("%s: severity %q, SPEC.md says %q", a.name, a.labels["severity"], w)
		}
	}
}

// TestAlertsTested checks that alerts_test.yml has, for every alert, a case
// where it fires and a case where it does not.
func TestAlertsTested(t *testing.T) {
	var f struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name  string `yaml:"name"`
			Cases []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, alertsTestFile), &f); err != nil {
		t.Fatalf("%s: %v", alertsTestFile, err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, c := range tc.Cases {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alertname] = true
			} else {
				quiet[c.Alertname] = true
			}
		}
	}
	known := map[string]bool{}
	for _, a := range loadAlerts(t) {
		known[a.name] = true
		if !fires[a.name] {
			t.Errorf("%s: no test case in which %s fires", alertsTestFile, a.name)
		}
		if !quiet[a.name] {
			t.Errorf("%s: no test case in which %s does not fire", alertsTestFile, a.name)
		}
	}
	for name := range fires {
		if !known[name] {
			t.Errorf("%s tests unknown alert %s", alertsTestFile, name)
		}
	}
}

// TestPrometheusConfig checks what alerts.yml relies on: the rule file is
// loaded and every scrape job is named kpipe* (ItelWorkerStopped watches
// up{job=~"kpipe.*"}).
func TestPrometheusConfig(t *testing.T) {
	var f struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, prometheusFile), &f); err != nil {
		t.Fatalf("%s: %v", prometheusFile, err)
	}
	if !slices.Contains(f.RuleFiles, "alerts.yml") {
		t.Errorf("%s: rule_files %v, want alerts.yml", prometheusFile, f.RuleFiles)
	}
	if len(f.ScrapeConfigs) == 0 {
		t.Errorf("%s: no scrape_configs", prometheusFile)
	}
	for _, sc := range f.ScrapeConfigs {
		if !strings.HasPrefix(sc.JobName, "kpipe") {
			t.Errorf("%s: job %q does not start with kpipe", prometheusFile, sc.JobName)
		}
	}
}

type dashboard struct {
	file          string
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

// query is one PromQL expression of a dashboard, named for messages.
type query struct {
	where string // file, panel and refId
	expr  string // with Grafana variables expanded
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, dashboardsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("%s: %d dashboards, want at least SPEC.md's 3", dashboardsDir, len(files))
	}
	var ds []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := dashboard{file: filepath.Base(f)}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", d.file, err)
		}
		ds = append(ds, d)
	}
	return ds
}

func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

// dashboardQueries returns every target expression of the dashboards, with
// Grafana variables expanded, and checks that each variable is defined.
func dashboardQueries(t *testing.T, ds []dashboard) []query {
	t.Helper()
	var qs []query
	for _, d := range ds {
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
		}
		for _, p := range flatten(d.Panels) {
			for _, tg := range p.Targets {
				where := fmt.Sprintf("%s panel %d %q target %s", d.file, p.ID, p.Title, tg.RefID)
				expr, used, err := expandGrafana(tg.Expr)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				for _, v := range used {
					if !vars[v] {
						t.Errorf("%s: variable $%s is not defined in templating", where, v)
					}
				}
				qs = append(qs, query{where, expr})
			}
		}
	}
	return qs
}

func TestDashboards(t *testing.T) {
	ds := loadDashboards(t)
	uids, titles := map[string]string{}, map[string]string{}
	for _, d := range ds {
		if d.UID == "" || len(d.UID) > 40 {
			t.Errorf("%s: uid %q, want 1 to 40 characters", d.file, d.UID)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %q is also the uid of %s", d.file, d.UID, other)
		}
		uids[d.UID] = d.file
		if d.Title == "" {
			t.Errorf("%s: no title", d.file)
		}
		if other, dup := titles[d.Title]; dup {
			t.Errorf("%s: title %q is also the title of %s", d.file, d.Title, other)
		}
		titles[d.Title] = d.file
		if d.SchemaVersion < 36 {
			t.Errorf("%s: schemaVersion %d, want at least 36", d.file, d.SchemaVersion)
		}
		hasDS := false
		for _, v := range d.Templating.List {
			if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
				hasDS = true
			}
		}
		if !hasDS {
			t.Errorf("%s: no Prometheus datasource variable named datasource", d.file)
		}
		checkPanels(t, d)
	}
}

func checkPanels(t *testing.T, d dashboard) {
	t.Helper()
	ps := flatten(d.Panels)
	if len(ps) == 0 {
		t.Errorf("%s: no panels", d.file)
	}
	ids := map[int]bool{}
	type rect struct{ x, y, w, h int }
	var placed []rect
	for _, p := range ps {
		where := fmt.Sprintf("%s panel %d %q", d.file, p.ID, p.Title)
		if ids[p.ID] || p.ID <= 0 {
			t.Errorf("%s: id missing or not unique", where)
		}
		ids[p.ID] = true
		if p.Type == "" || p.Title == "" {
			t.Errorf("%s: no type or title", where)
		}
		if g := p.GridPos; g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v, want w, h > 0 within 24 columns", where, g)
		} else {
			r := rect{g.X, g.Y, g.W, g.H}
			for _, o := range placed {
				if r.x < o.x+o.w && o.x < r.x+r.w && r.y < o.y+o.h && o.y < r.y+r.h {
					t.Errorf("%s: gridPos %+v overlaps another panel", where, *g)
				}
			}
			placed = append(placed, r)
		}
		if p.Type == "row" || p.Type == "text" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource %+v, want prometheus ${datasource}", where, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refId %q missing or not unique", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s target %s: no expr", where, tg.RefID)
			}
		}
	}
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9_]+`)

// TestDashboardExpressions has promtool parse every dashboard expression:
// promtool has no command that checks a bare expression, so each becomes a
// recording rule of a temporary rule file.
func TestDashboardExpressions(t *testing.T) {
	qs := dashboardQueries(t, loadDashboards(t))
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	var legend strings.Builder
	for i, q := range qs {
		name := fmt.Sprintf("deploytest:q%d:%s", i, strings.Trim(nonName.ReplaceAllString(q.where, "_"), "_"))
		rules = append(rules, rule{name, q.expr})
		fmt.Fprintf(&legend, "%s = %s\n", name, q.where)
	}
	// JSON is YAML, and needs no escaping rules of its own here.
	b, err := json.MarshalIndent(map[string]any{
		"groups": []any{map[string]any{"name": "dashboards", "rules": rules}},
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard_exprs.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), promtool(t), "check", "rules", abs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard expressions: %v\n%s\nrules:\n%s", err, out, legend.String())
	}
}

// exportedMetrics returns the series names kpipe exports, each with its label
// names: it builds internal/metrics on a fresh registry, creates one child of
// every vector with dummy label values, and gathers.
func exportedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	v := reflect.ValueOf(m).Elem()
	vecs := 0
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		get := v.Field(i).MethodByName("GetMetricWithLabelValues")
		if !get.IsValid() {
			t.Fatalf("metrics.Metrics.%s (%s) has no GetMetricWithLabelValues; teach exportedMetrics about it", f.Name, f.Type)
		}
		touched := false
		for n := 0; n <= 8 && !touched; n++ {
			args := make([]reflect.Value, n)
			for j := range args {
				args[j] = reflect.ValueOf("x")
			}
			touched = get.Call(args)[1].IsNil()
		}
		if !touched {
			t.Fatalf("metrics.Metrics.%s: no label count from 0 to 8 works", f.Name)
		}
		vecs++
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != vecs {
		t.Fatalf("gathered %d metric families from %d collectors", len(mfs), vecs)
	}
	out := map[string][]string{}
	for _, mf := range mfs {
		var labels []string
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			labels = append(labels, lp.GetName())
		}
		labels = append(labels, targetLabels...)
		name := mf.GetName()
		switch mf.GetType().String() {
		case "HISTOGRAM":
			out[name+"_bucket"] = append(slices.Clone(labels), "le")
			out[name+"_sum"] = labels
			out[name+"_count"] = labels
		case "SUMMARY":
			out[name] = append(slices.Clone(labels), "quantile")
			out[name+"_sum"] = labels
			out[name+"_count"] = labels
		default:
			out[name] = labels
		}
	}
	out["up"] = targetLabels
	return out
}

// TestMetricNames checks that every metric the alerts and dashboards select
// is one kpipe exports, that every label they match on or group by is a
// label of a metric of the same expression, and that each SPEC.md metric
// appears somewhere.
func TestMetricNames(t *testing.T) {
	exported := exportedMetrics(t)
	var qs []query
	for _, a := range loadAlerts(t) {
		qs = append(qs, query{alertsFile + " alert " + a.name, a.expr})
	}
	ds := loadDashboards(t)
	qs = append(qs, dashboardQueries(t, ds)...)
	// Template variables of type query: label_values(metric, label).
	labelValues := regexp.MustCompile(`^label_values\(\s*(\w+)\s*,\s*(\w+)\s*\)$`)
	for _, d := range ds {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			// The query of a Prometheus query variable: {"query": "label_values(…)", …}
			// (Grafana's "definition" repeats it, and is not in its schema).
			def := ""
			if q, ok := v.Query.(map[string]any); ok {
				def, _ = q["query"].(string)
			}
			m := labelValues.FindStringSubmatch(def)
			if m == nil {
				t.Errorf("%s variable %s: query %q is not label_values(metric, label)", d.file, v.Name, def)
				continue
			}
			qs = append(qs, query{fmt.Sprintf("%s variable %s", d.file, v.Name), fmt.Sprintf("sum by (%s) (%s)", m[2], m[1])})
		}
	}
	used := map[string]bool{}
	for _, q := range qs {
		p, err := scanPromQL(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		if len(p.selectors) == 0 {
			t.Errorf("%s: selects no metric: %s", q.where, q.expr)
		}
		known := map[string]bool{}
		for _, s := range p.selectors {
			labels, ok := exported[s.name]
			if !ok {
				t.Errorf("%s: metric %s is not exported by internal/metrics", q.where, s.name)
				continue
			}
			used[s.name] = true
			for _, l := range labels {
				known[l] = true
			}
			for _, l := range s.labels {
				if !slices.Contains(labels, l) {
					t.Errorf("%s: metric %s has no label %s (has %v)", q.where, s.name, l, labels)
				}
			}
		}
		for _, l := range p.grouping {
			if !known[l] {
				t.Errorf("%s: grouping label %s is on none of its metrics", q.where, l)
			}
		}
	}
	// SPEC.md's "Key Metrics" should each be on a dashboard or in an alert.
	spec := []string{
		"itel_plugin_events_triggered_total", "itel_plugin_events_published_total", "itel_plugin_publish_errors_total",
		"itel_worker_messages_consumed_total", "itel_worker_messages_processed_total", "itel_worker_messages_failed_total",
		"itel_worker_claimx_api_calls_total", "itel_worker_claimx_api_errors_total", "itel_worker_claimx_api_latency_seconds_bucket",
		"itel_worker_delta_writes_total", "itel_worker_delta_write_errors_total", "itel_worker_processing_latency_seconds_bucket",
	}
	var unused []string
	for _, name := range spec {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("SPEC.md metrics on no dashboard and in no alert: %v", unused)
	}
}
