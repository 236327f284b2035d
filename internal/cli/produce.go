package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/httpconn"
	"kpipe/internal/kafka"
	"kpipe/internal/stack"
)

func init() { register(newProduceCmd) }

func newProduceCmd(env *Env) *cobra.Command {
	var (
		file    string
		example int64
		topic   string
		key     string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "produce [JSON | -]",
		Short: "Produce ClaimX events to claimx.events: one JSON event, a file of them, or an example",
		Long: `Produce events to a Kafka topic (default claimx.events), without kcat:

  kpipe produce '{"event_id":...}'   one event given as an argument ("-": read stdin)
  kpipe produce --file events.jsonl  a file of events: JSON lines, or one JSON array
  kpipe produce --example 1000017    an event of an existing task assignment

Events for claimx.events are checked first (event_id and event_type are
required) and keyed by project_id, as the simulator and ClaimX do; nothing
is produced when one of them is bad. --example fetches the assignment from
the ClaimX API (the claimx_api connection: CLAIMX_API_BASE_URL and
CLAIMX_API_TOKEN) and produces the event its status would have made, with a
new event_id (CUSTOM_TASK_ASSIGNED, _STATUS_CHANGED or _COMPLETED), so that
the plugin, the tracking worker and the table see one event of a real
assignment; --example prints the event as well.

Kafka settings come from KAFKA_BOOTSTRAP_SERVERS and the other KAFKA_*
variables. It prints the partition and offset of each event.`,
		Example: `  kpipe produce --example 1000017
  kpipe produce --file events.jsonl
  echo '{"event_id":"e1","event_type":"PROJECT_CREATED","project_id":"5000001"}' | kpipe produce -`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			given := 0
			for _, b := range []bool{len(args) > 0, file != "", example != 0} {
				if b {
					given++
				}
			}
			if given != 1 {
				return cmdLineUsage(errors.New("give exactly one of: a JSON event (or - for stdin), --file, --example ASSIGNMENT_ID"))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var values [][]byte
			var err error
			switch {
			case example != 0:
				v, err := exampleEvent(ctx, env, example)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "%s\n", v)
				values = [][]byte{v}
			case file != "":
				data, err := os.ReadFile(file)
				if err != nil {
					return usage(fmt.Errorf("--file: %w", err))
				}
				if values, err = splitEvents(data); err != nil {
					return usage(fmt.Errorf("--file %s: %w", file, err))
				}
			case args[0] == "-":
				in := env.Stdin
				if in == nil {
					in = cmd.InOrStdin()
				}
				data, err := io.ReadAll(in)
				if err != nil {
					return err
				}
				if values, err = splitEvents(data); err != nil {
					return usage(fmt.Errorf("stdin: %w", err))
				}
			default:
				values = [][]byte{[]byte(args[0])}
			}
			if len(values) == 0 {
				return usage(errors.New("no events to produce"))
			}
			recs, err := eventRecords(topic, key, values)
			if err != nil {
				return usage(err)
			}
			kcfg, err := kafka.ConfigFromEnv(env.Getenv)
			if err == nil {
				err = kcfg.Validate()
			}
			if err != nil {
				return usage(err)
			}
			cl, err := checkedClient(ctx, kcfg, env.Logger)
			if err != nil {
				return err
			}
			defer cl.Close()
			res := cl.ProduceSync(ctx, recs...)
			for i, r := range res {
				if r.Err != nil {
					return fmt.Errorf("producing event %d of %d to %s: %w", i+1, len(recs), topic, r.Err)
				}
			}
			for i, r := range res {
				if i == 10 && len(res) > 11 {
					fmt.Fprintf(env.Stdout, "  ... %d more\n", len(res)-10)
					break
				}
				fmt.Fprintf(env.Stdout, "  %s/%d/%d\n", r.Record.Topic, r.Record.Partition, r.Record.Offset)
			}
			fmt.Fprintf(env.Stdout, "produced %d events to %s\n", len(res), topic)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "produce the events of this file (JSON lines, or a JSON array)")
	f.Int64Var(&example, "example", 0, "produce an example event of this existing task assignment (fetched from the ClaimX API)")
	f.StringVar(&topic, "topic", kafka.TopicEvents, "topic to produce to (events for claimx.events are checked and keyed by project_id)")
	f.StringVar(&key, "key", "", "record key (default: the event's project_id)")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

// splitEvents reads JSON lines or one JSON array of objects.
func splitEvents(data []byte) ([][]byte, error) {
	t := bytes.TrimSpace(data)
	if len(t) > 0 && t[0] == '[' {
		var arr []json.RawMessage
		if err := json.Unmarshal(t, &arr); err != nil {
			return nil, fmt.Errorf("not a JSON array of events: %w", err)
		}
		out := make([][]byte, len(arr))
		for i, v := range arr {
			out[i] = []byte(v)
		}
		return out, nil
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
			out = append(out, bytes.Clone(l))
		}
	}
	return out, sc.Err()
}

// eventRecords checks the events and makes their records: for
// claimx.events each must parse as a ClaimX event, keyed by project_id;
// for another topic each must be JSON. Every bad event is named.
func eventRecords(topic, key string, values [][]byte) ([]*kgo.Record, error) {
	var errs []error
	recs := make([]*kgo.Record, 0, len(values))
	for i, v := range values {
		r := &kgo.Record{Topic: topic, Value: v}
		if key != "" {
			r.Key = []byte(key)
		}
		if topic == kafka.TopicEvents {
			e, err := claimx.ParseEvent(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("event %d: %w", i+1, err))
				continue
			}
			if key == "" && e.ProjectID != "" {
				r.Key = []byte(e.ProjectID)
			}
		} else if !json.Valid(v) {
			errs = append(errs, fmt.Errorf("event %d: not JSON", i+1))
			continue
		}
		recs = append(recs, r)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("nothing produced: %w", errors.Join(errs...))
	}
	return recs, nil
}

// exampleEvent fetches the assignment from the claimx_api connection and
// returns the JSON of the event its status would have made.
func exampleEvent(ctx context.Context, env *Env, assignment int64) ([]byte, error) {
	cfg, err := loadConfig(env, "")
	if err != nil {
		return nil, err
	}
	conn := cfg.Connections[stack.EnrichConnection]
	if conn == nil {
		return nil, usage(fmt.Errorf("--example: connection %q is not defined in %s/plugins/shared/connections", stack.EnrichConnection, cfg.Dir))
	}
	cx, err := claimx.NewClient(conn, httpconn.WithLogger(env.Logger))
	if err != nil {
		return nil, usage(err)
	}
	defer cx.Close()
	row, err := cx.TaskAssignment(ctx, assignment)
	if err != nil {
		return nil, fmt.Errorf("--example: fetching task assignment %d from %s: %w", assignment, strings.TrimSuffix(conn.BaseURL, "/"), err)
	}
	ev, err := claimx.ExampleEvent(row, time.Now())
	if err != nil {
		return nil, fmt.Errorf("--example: task assignment %d: %w", assignment, err)
	}
	return ev.AppendJSON(nil), nil
}
