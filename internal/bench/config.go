package bench

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// writeConfig copies the configuration folder src to dst and changes the
// worker's workers.yaml there: its topics and consumer group become the
// run's own, and with manyKeys its lookup asks for each event's
// assignment (GET /customTasks/assignment/{id}) instead of the one task
// template. Nothing else changes: the worker runs the chain as shipped.
func writeConfig(src, dst, worker string, t topics, manyKeys bool, extra map[string]string) error {
	found := false
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if d.Name() == "workers.yaml" {
			nb, ok, err := rewriteWorkers(b, worker, t, manyKeys, extra)
			if err != nil {
				return fmt.Errorf("bench: %s: %w", p, err)
			}
			found = found || ok
			b = nb
		}
		return os.WriteFile(out, b, 0o640)
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("bench: no workers.yaml under %s defines worker %q", src, worker)
	}
	return nil
}

// rewriteWorkers returns b with worker's topics replaced (ok false when b
// does not define the worker).
func rewriteWorkers(b []byte, worker string, t topics, manyKeys bool, extra map[string]string) ([]byte, bool, error) {
	var doc struct {
		Workers map[string]struct {
			Handlers []struct {
				Type string `yaml:"type"`
			} `yaml:"enrichment_handlers"`
		} `yaml:"workers"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, false, err
	}
	w, ok := doc.Workers[worker]
	if !ok {
		return b, false, nil
	}
	f, err := parser.ParseBytes(b, parser.ParseComments)
	if err != nil {
		return nil, false, err
	}
	base := "$.workers." + worker
	set := map[string]string{
		base + ".input_topic":    t.input,
		base + ".consumer_group": t.group,
		base + ".success_topic":  t.success,
		base + ".error_topic":    t.errors,
	}
	if manyKeys {
		lookup := -1
		for i, h := range w.Handlers {
			if h.Type == "lookup" {
				lookup = i
			}
		}
		if lookup < 0 {
			return nil, false, fmt.Errorf("worker %s has no lookup handler: --keys above 1 changes its key", worker)
		}
		cfg := fmt.Sprintf("%s.enrichment_handlers[%d].config", base, lookup)
		// The endpoint keeps its placeholder name, task_id, now filled
		// from the event's assignment_id.
		set[cfg+".endpoint"] = "/customTasks/assignment/{task_id}"
		set[cfg+".path_params.task_id"] = "assignment_id"
	}
	for k, v := range extra {
		set[base+"."+k] = v
	}
	for p, v := range set {
		path, err := yaml.PathString(p)
		if err != nil {
			return nil, false, err
		}
		if _, err := path.FilterFile(f); err != nil {
			// Not in the file: add it to the mapping that should hold it.
			i := strings.LastIndex(p, ".")
			parent, perr := yaml.PathString(p[:i])
			if perr != nil {
				return nil, false, perr
			}
			if merr := parent.MergeFromReader(f, strings.NewReader(p[i+1:]+": "+v)); merr != nil {
				return nil, false, fmt.Errorf("%s: not found (%w), and cannot be added: %w", p, err, merr)
			}
			continue
		}
		if err := path.ReplaceWithReader(f, strings.NewReader(v)); err != nil {
			return nil, false, fmt.Errorf("%s: %w", p, err)
		}
	}
	return []byte(f.String() + "\n"), true, nil
}
