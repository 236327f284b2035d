package cli

import (
	"bytes"
	"net"
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

// TestTopicsCreateKafkaErrors: a wrong SASL password is one clear error
// naming the mechanism and the broker (it used to be a bare EOF), and an
// unreachable broker says so.
func TestTopicsCreateKafkaErrors(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "alice", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	broker := c.ListenAddrs()[0]
	vars := map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": broker, "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
		"KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": "hunter2-bad",
	}
	code, _, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "topics", "create")
	if code != ExitFailure {
		t.Fatalf("wrong password: exit %d, want %d\n%s", code, ExitFailure, errOut)
	}
	for _, want := range []string{"kafka authentication failed", "SCRAM-SHA-256", broker, `"alice"`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("wrong password: the error does not name %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "hunter2") {
		t.Errorf("the error shows the password:\n%s", errOut)
	}
	vars["KAFKA_SASL_PASSWORD"] = "s3cret"
	if code, _, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "topics", "create"); code != ExitOK {
		t.Fatalf("right password: exit %d\n%s", code, errOut)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	code, _, errOut = runCLI(t, map[string]string{"KAFKA_BOOTSTRAP_SERVERS": closed}, "--config-dir", repoConfig(), "topics", "create")
	if code != ExitFailure || !strings.Contains(errOut, "kafka brokers unreachable") || !strings.Contains(errOut, closed) {
		t.Fatalf("unreachable: exit %d\n%s", code, errOut)
	}
}
