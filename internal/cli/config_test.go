package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testToken = "tok-9f8e7d6c5b4a"

// runCLI runs kpipe in-process with the given environment and returns the
// exit code, stdout and stderr.
func runCLI(t *testing.T, envVars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) (string, bool) {
		v, ok := envVars[k]
		return v, ok
	}}
	ctx := t.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	code := run(ctx, env, args)
	return code, stdout.String(), stderr.String()
}

func claimxEnv() map[string]string {
	return map[string]string{"CLAIMX_API_BASE_URL": "http://127.0.0.1:8080", "CLAIMX_API_TOKEN": testToken}
}

func repoConfig() string { return filepath.Join("..", "..", "config") }

func TestConfigCheck(t *testing.T) {
	code, out, errOut := runCLI(t, claimxEnv(), "config", "check", "--dir", repoConfig())
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	for _, want := range []string{
		"configuration OK",
		"itel_cabinet_api  task_trigger, enabled, priority 50",
		`trigger 32513 "iTel Cabinet Task Tracking"`,
		"itel.cabinet.task.tracking -> transform -> validation -> lookup(claimx_api) -> delta_writer",
		"claimx_api  http://127.0.0.1:8080, auth bearer",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestConfigCheckFailsWithEveryProblem(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, repoConfig(), dir)
	wf := filepath.Join(dir, "plugins", "itel_cabinet_api", "workers.yaml")
	data, _ := os.ReadFile(wf)
	bad := strings.NewReplacer("batch_size: 100", "batch_sise: 100", "- type: validation", "- type: validaton",
		"cache_ttl: 60", "cache_tll: 60").Replace(string(data))
	if err := os.WriteFile(wf, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, map[string]string{"CLAIMX_API_BASE_URL": "http://x"}, "config", "check", "--config-dir", dir)
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitUsage, errOut)
	}
	for _, want := range []string{
		"claimx.yaml:14:17: environment variable CLAIMX_API_TOKEN is not set",
		"workers.yaml:13:5: unknown field \"batch_sise\" (did you mean \"batch_size\"?)",
		"workers.yaml:63:15: worker \"itel_cabinet_tracking_worker\": unknown handler type \"validaton\" (did you mean \"validation\"?)",
		"workers.yaml:87:11: worker \"itel_cabinet_tracking_worker\" lookup handler: unknown field \"cache_tll\" (did you mean \"cache_ttl\"?)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestConfigShowRedactsSecrets(t *testing.T) {
	code, out, errOut := runCLI(t, claimxEnv(), "config", "show", "--dir", repoConfig())
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	if strings.Contains(out, testToken) || strings.Contains(errOut, testToken) {
		t.Fatalf("config show printed the token:\n%s", out)
	}
	for _, want := range []string{"auth_token: '[REDACTED]'", "base_url: http://127.0.0.1:8080", "type: delta_writer", "publish_to_topic: itel.cabinet.task.tracking"} {
		if !strings.Contains(out, want) && !strings.Contains(out, strings.ReplaceAll(want, "'", `"`)) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
}

// An unknown command is a usage error at every level: cobra alone prints a
// group's help and exits 0 for "kpipe table frobnicate".
func TestUnknownCommandIsUsageError(t *testing.T) {
	for _, args := range [][]string{{"nonsense"}, {"table", "frobnicate"}, {"table", "desribe"}, {"topics", "nonsense"}, {"dlq", "nonsense"}} {
		code, _, errOut := runCLI(t, nil, args...)
		if code != ExitUsage || !strings.Contains(errOut, fmt.Sprintf("unknown command %q", args[len(args)-1])) {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
	if _, _, errOut := runCLI(t, nil, "table", "desribe"); !strings.Contains(errOut, "did you mean describe?") {
		t.Errorf("no suggestion: %q", errOut)
	}
	// A missing subcommand is a usage error too, with the group's usage.
	if code, _, errOut := runCLI(t, nil, "table"); code != ExitUsage || !strings.Contains(errOut, "kpipe table needs a subcommand") || !strings.Contains(errOut, "Available Commands") {
		t.Errorf("kpipe table: exit %d, want 2 and its usage:\n%s", code, errOut)
	}
	if code, out, _ := runCLI(t, nil, "table", "--help"); code != ExitOK || !strings.Contains(out, "Available Commands") {
		t.Errorf("kpipe table --help: exit %d, want its help:\n%s", code, out)
	}
}

// copyTree copies the folder src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGlobalFlagsFromEnvironment(t *testing.T) {
	vars := claimxEnv()
	vars["KPIPE_CONFIG_DIR"] = repoConfig()
	vars["KPIPE_LOG_LEVEL"] = "loud"
	code, _, errOut := runCLI(t, vars, "config", "check")
	if code != ExitUsage || !strings.Contains(errOut, `--log-level "loud"`) {
		t.Fatalf("KPIPE_LOG_LEVEL not used: exit %d, %s", code, errOut)
	}
	vars["KPIPE_LOG_LEVEL"] = "debug"
	vars["KPIPE_LOG_FORMAT"] = "json"
	if code, out, errOut := runCLI(t, vars, "config", "check"); code != ExitOK || !strings.Contains(out, "configuration OK") {
		t.Fatalf("KPIPE_CONFIG_DIR not used: exit %d, %s", code, errOut)
	}
	// A flag beats the environment.
	if code, _, _ := runCLI(t, vars, "--log-level", "warn", "config", "check"); code != ExitOK {
		t.Fatalf("--log-level did not override KPIPE_LOG_LEVEL: exit %d", code)
	}
}
