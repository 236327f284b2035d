package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

func TestTopicsCreate(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	vars := map[string]string{"KAFKA_BOOTSTRAP_SERVERS": strings.Join(c.ListenAddrs(), ",")}
	runTopics := func() (int, string) {
		var out, errb bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
		code := run(t.Context(), env, []string{"--config-dir", "../../config", "--log-level", "error", "topics", "create"})
		return code, out.String() + errb.String()
	}
	code, out := runTopics()
	if code != ExitOK || strings.Count(out, "created") != 5 {
		t.Fatalf("first run: exit %d, output:\n%s", code, out)
	}
	code, out = runTopics()
	if code != ExitOK || strings.Count(out, "exists") != 5 || strings.Contains(out, "created") {
		t.Fatalf("second run: exit %d, output:\n%s", code, out)
	}

	delete(vars, "KAFKA_BOOTSTRAP_SERVERS")
	code, out = runTopics()
	if code != ExitUsage || !strings.Contains(out, "KAFKA_BOOTSTRAP_SERVERS") {
		t.Fatalf("without brokers: exit %d, output:\n%s", code, out)
	}
}
