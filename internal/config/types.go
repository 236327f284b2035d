package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Config is everything kpipe loads from its configuration folder.
type Config struct {
	// Dir is the configuration folder the files were read from.
	Dir string `yaml:"-"`
	// Plugins are every plugins/*/config.yaml, sorted by priority (lowest
	// first), then name.
	Plugins []*Plugin `yaml:"plugins"`
	// Workers are the workers of every plugins/*/workers.yaml, sorted by name.
	Workers []*Worker `yaml:"workers"`
	// Connections are the named HTTP connections of
	// plugins/shared/connections/*.yaml, by name.
	Connections map[string]*Connection `yaml:"connections"`
}

// Plugin is one plugins/<name>/config.yaml.
type Plugin struct {
	// Name identifies the plugin in logs and metrics. Required.
	Name string `yaml:"name"`
	// Module and Class name the implementation, in the Python form SPEC.md
	// uses (module kafka_pipeline.plugins.task_trigger, class
	// TaskTriggerPlugin); the plugin registry resolves Module to a kind and
	// the kind's factory checks Class.
	Module string `yaml:"module"`
	Class  string `yaml:"class"`
	// Enabled plugins run; disabled ones are loaded and checked only.
	Enabled bool `yaml:"enabled"`
	// Priority orders plugins: lower runs first. Default 0.
	Priority int `yaml:"priority"`
	// Config is the plugin's config block, decoded strictly by the
	// plugin's factory.
	Config Block `yaml:"config"`

	// File is where the plugin was read from.
	File string `yaml:"-"`
	kind string
}

// Kind is the plugin's kind: Module resolved by the plugin registry Load
// was given (WithPlugins), else Module as written.
func (p *Plugin) Kind() string {
	if p.kind != "" {
		return p.kind
	}
	return p.Module
}

// Worker is one entry of a workers.yaml "workers:" map: a plugin action
// worker.
type Worker struct {
	// Name identifies the worker (kpipe worker NAME); defaults to its map key.
	Name string `yaml:"name"`
	// InputTopic is consumed in ConsumerGroup. Both required.
	InputTopic    string `yaml:"input_topic"`
	ConsumerGroup string `yaml:"consumer_group"`
	// BatchSize is the most records taken from one poll. Default 100.
	BatchSize int `yaml:"batch_size"`
	// EnableAutoCommit must be false: offsets are committed only after the
	// rows they cover are durable. Default false.
	EnableAutoCommit bool `yaml:"enable_auto_commit"`
	// DestinationConnection and DestinationPath are for workers that send
	// results to an HTTP connection; null for the Delta writer.
	DestinationConnection *string `yaml:"destination_connection"`
	DestinationPath       *string `yaml:"destination_path"`
	// SuccessTopic and ErrorTopic receive a record per message. Optional.
	SuccessTopic string `yaml:"success_topic"`
	ErrorTopic   string `yaml:"error_topic"`
	// SuccessRecord says which event fields a success record carries.
	// Default: none, only where the message came from and where its row
	// went.
	SuccessRecord SuccessRecord `yaml:"success_record"`
	// EnrichmentHandlers is the handler chain, run in order.
	EnrichmentHandlers []*HandlerSpec `yaml:"enrichment_handlers"`
	// MaxMessageBytes is the largest input message handled; a larger one
	// goes to the error topic as class too_large (its original cut to fit).
	// Default 1048576 (Kafka's default message size limit).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// StatusField names the event field whose value
	// kpipe_worker_rows_by_status_total counts written rows by (such as
	// task_status); its distinct values are capped, later ones count as
	// "other". Empty: rows are not counted by status. Default empty.
	StatusField string `yaml:"status_field"`
	// MaxNestingDepth is the deepest nesting of objects and arrays in an
	// input message, the message itself counting as 1; a deeper one goes to
	// the error topic as class too_deep. Default 64, at most 80 (a
	// Parquet column has at most 255 definition levels).
	MaxNestingDepth int `yaml:"max_nesting_depth"`
	// PollsInFlight is how many polls the worker has in its chain at once
	// (decoding, transform, validation, lookups): a slow lookup in one poll
	// does not stop the next polls, whose rows then wait only to reach the
	// writer in offset order. It bounds memory: about PollsInFlight ×
	// batch_size records are decoded at a time. Default
	// DefaultPollsInFlight, between 1 and MaxPollsInFlight.
	PollsInFlight int `yaml:"polls_in_flight"`
	// FetchMaxBytes is the most record data one fetch from one broker
	// returns (Kafka's fetch.max.bytes): the Kafka client holds up to about
	// twice this per broker, fetched ahead of the chain and uncompressed.
	// Raise it for brokers far away. Default DefaultFetchMaxBytes.
	FetchMaxBytes int `yaml:"fetch_max_bytes"`
	// FetchMaxPartitionBytes is the most one partition gives a fetch
	// (max.partition.fetch.bytes); a record batch larger than it still
	// comes whole. Default DefaultFetchMaxPartitionBytes.
	FetchMaxPartitionBytes int `yaml:"fetch_max_partition_bytes"`

	// File is where the worker was read from.
	File string `yaml:"-"`
	pos  Pos
}

// SuccessRecord configures the success records of a worker.
type SuccessRecord struct {
	// Fields are the event fields (dotted paths, after the handler chain)
	// each success record carries under their names, in this order; an
	// absent field is null. Default none.
	Fields []string `yaml:"fields"`
}

// successRecordKeys are the keys every success record has.
var successRecordKeys = []string{"worker", "table", "table_version", "topic", "partition", "offset", "processed_at"}

// Validate reports empty or repeated fields, and fields named like the
// keys every success record has.
func (s *SuccessRecord) Validate() error {
	var errs []error
	seen := make(map[string]bool, len(s.Fields))
	for _, f := range s.Fields {
		switch {
		case f == "":
			errs = append(errs, errors.New("fields: a field is empty"))
		case seen[f]:
			errs = append(errs, fmt.Errorf("fields: %q is listed twice", f))
		case slices.Contains(successRecordKeys, f):
			errs = append(errs, fmt.Errorf("fields: %q is a key every success record has already (%s)", f, strings.Join(successRecordKeys, ", ")))
		}
		seen[f] = true
	}
	return errors.Join(errs...)
}

// HandlerSpec is one entry of enrichment_handlers: a type and its config
// block, which the handler's registry entry decodes strictly with Decode.
type HandlerSpec struct {
	// Type is the handler type as the handler registry Load was given
	// (WithHandlers) names it, an alias such as SPEC.md's Python path
	// resolved; without one, TypeAsWritten.
	Type string
	// TypeAsWritten is the type exactly as the file spells it.
	TypeAsWritten string
	// Pos is where the handler entry starts.
	Pos Pos

	config  Block
	typePos Pos
}

// Connection is a named HTTP connection.
type Connection struct {
	// Name identifies the connection; defaults to its map key.
	Name string `yaml:"name"`
	// BaseURL is prefixed to every endpoint. Required.
	BaseURL string `yaml:"base_url"`
	// AuthType is bearer, basic or none. Default none.
	AuthType string `yaml:"auth_type"`
	// AuthToken is the bearer token (auth_type bearer).
	AuthToken Secret `yaml:"auth_token"`
	// Username and Password are for auth_type basic.
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
	// TimeoutSeconds bounds one request attempt. Default 30.
	TimeoutSeconds float64 `yaml:"timeout_seconds"`
	// MaxRetries is how many times a retryable failure (network error, 5xx,
	// 429) is retried. Default 3.
	MaxRetries int `yaml:"max_retries"`
	// RetryBackoffBase: the wait before retry n is base^n seconds, with
	// jitter, capped at RetryBackoffMax seconds. Defaults 2 and 60.
	RetryBackoffBase float64 `yaml:"retry_backoff_base"`
	RetryBackoffMax  float64 `yaml:"retry_backoff_max"`
	// RetryAfterMaxSeconds caps a server's Retry-After. Default 60.
	RetryAfterMaxSeconds float64 `yaml:"retry_after_max_seconds"`
	// MaxConcurrency bounds requests in flight on this connection. Default 32.
	MaxConcurrency int `yaml:"max_concurrency"`
	// RateLimit bounds requests per second (0: unlimited). Default 0.
	RateLimit float64 `yaml:"rate_limit"`
	// Headers are sent with every request.
	Headers map[string]string `yaml:"headers"`

	// File is where the connection was read from.
	File string `yaml:"-"`
	pos  Pos
}

// Timeout is TimeoutSeconds as a duration.
func (c *Connection) Timeout() time.Duration { return seconds(c.TimeoutSeconds) }

// BackoffMax is RetryBackoffMax as a duration.
func (c *Connection) BackoffMax() time.Duration { return seconds(c.RetryBackoffMax) }

// RetryAfterMax is RetryAfterMaxSeconds as a duration.
func (c *Connection) RetryAfterMax() time.Duration { return seconds(c.RetryAfterMaxSeconds) }

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
