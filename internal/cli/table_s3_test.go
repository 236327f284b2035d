package cli

import (
	"strings"
	"testing"

	"kpipe/internal/s3test"
)

// kpipe table takes an s3:// location: create, describe and history on a
// real S3 server (versitygw).
func TestTableCommandsOnS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	loc := srv.URL("delta/itel_cabinet_task_tracking")

	code, out, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "table", "create", "--location", loc)
	if code != ExitOK || !strings.Contains(out, "created table itel_cabinet_task_tracking") || !strings.Contains(out, "(version 0)") {
		t.Fatalf("create: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, nil, "--config-dir", repoConfig(), "table", "create", "--location", loc)
	if code == ExitOK || !strings.Contains(errOut, "--drop-existing") {
		t.Fatalf("create again: exit %d, want a refusal naming --drop-existing: %s", code, errOut)
	}
	code, out, errOut = runCLI(t, nil, "table", "describe", loc)
	if code != ExitOK || !strings.Contains(out, "event_id") || !strings.Contains(out, "s3://"+srv.Bucket+"/delta/itel_cabinet_task_tracking") {
		t.Fatalf("describe: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "table", "history", loc)
	if code != ExitOK || !strings.Contains(out, "CREATE TABLE") {
		t.Fatalf("history: exit %d\n%s\n%s", code, out, errOut)
	}
}
