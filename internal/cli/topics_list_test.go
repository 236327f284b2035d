package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTopicsList: list says which topics of topics.yaml are missing (exit
// 1) before topics create, and lists them with their partitions after.
func TestTopicsList(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	vars := map[string]string{"KAFKA_BOOTSTRAP_SERVERS": strings.Join(c.ListenAddrs(), ",")}
	code, out, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "--log-level", "error", "topics", "list")
	if code != ExitFailure || strings.Count(out, "missing") != 5 || !strings.Contains(errOut, "kpipe topics create") {
		t.Fatalf("before create: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "--log-level", "error", "topics", "create"); code != ExitOK {
		t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, vars, "--config-dir", repoConfig(), "--log-level", "error", "topics", "list")
	if code != ExitOK || strings.Count(out, " ok") != 5 || !strings.Contains(out, "claimx.events") {
		t.Fatalf("after create: exit %d\n%s%s", code, out, errOut)
	}
}

// TestTopicsCreateBrokerFailing: when the broker answers the connection
// check but not the topic listing, topics create reports no topic as
// existing: it fails and says why.
func TestTopicsCreateBrokerFailing(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The connection check's request passes; the listing's fail.
	calls := 0
	c.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		calls++
		if calls == 1 {
			return nil, nil, false
		}
		return nil, errors.New("metadata refused"), true
	})
	vars := map[string]string{"KAFKA_BOOTSTRAP_SERVERS": strings.Join(c.ListenAddrs(), ",")}
	code, out, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "--log-level", "error", "topics", "create", "--timeout", "3s")
	t.Logf("exit %d\n%s%s", code, out, errOut)
	if code != ExitFailure || strings.Contains(out, "exists") || strings.Contains(out, "created") {
		t.Fatalf("exit %d, want %d and no topic reported\n%s%s", code, ExitFailure, out, errOut)
	}
}
