// Package metrics defines every Prometheus collector kpipe exports and serves
// them, with /healthz and /readyz, over HTTP.
//
// Collectors are registered on an injected registry, never the default one:
//
//	reg := prometheus.NewRegistry()
//	m := metrics.New(reg)
//	m.WorkerMessagesConsumed.WithLabelValues("itel_cabinet_tracking_worker").Inc()
//
// The itel_plugin_* and itel_worker_* names are fixed by the specification;
// the others follow kpipe_<subsystem>_<name>. Labels stay bounded: worker,
// plugin, handler, connection, table and topic names come from configuration,
// partitions from the topic, class and reason from closed sets, and a value
// taken from data (RowsByStatus's status) through a CappedLabel.
package metrics

import (
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Label values for Metrics.HandlerMessages.
const (
	ResultIn       = "in"
	ResultOut      = "out"
	ResultFiltered = "filtered"
	ResultError    = "error"
)

// Metrics is the set of kpipe's collectors. A nil *Metrics is not valid; use
// New(prometheus.NewRegistry()) in tests.
type Metrics struct {
	// Plugin metrics (SPEC.md "Key Metrics"); label: plugin.
	PluginEventsTriggered *prometheus.CounterVec
	PluginEventsPublished *prometheus.CounterVec
	PluginPublishErrors   *prometheus.CounterVec
	// PluginErrors counts plugin failures other than publishing; labels: plugin.
	PluginErrors *prometheus.CounterVec

	// Worker metrics (SPEC.md "Key Metrics"); label: worker.
	WorkerMessagesConsumed  *prometheus.CounterVec
	WorkerMessagesProcessed *prometheus.CounterVec
	WorkerMessagesFailed    *prometheus.CounterVec
	WorkerClaimXAPICalls    *prometheus.CounterVec
	WorkerClaimXAPIErrors   *prometheus.CounterVec
	WorkerClaimXAPILatency  *prometheus.HistogramVec
	WorkerDeltaWrites       *prometheus.CounterVec
	WorkerDeltaWriteErrors  *prometheus.CounterVec
	WorkerProcessingLatency *prometheus.HistogramVec

	// ConsumerLag is records not yet consumed; labels: group, topic, partition.
	ConsumerLag *prometheus.GaugeVec
	// BatchSize is records per processed batch; label: worker.
	BatchSize *prometheus.HistogramVec
	// Errors counts failures by class (an error class, dlq.Class*, or
	// storage, publish); labels: worker, class.
	Errors *prometheus.CounterVec
	// ErrorRecords counts records published to an error topic; labels: worker, topic.
	ErrorRecords *prometheus.CounterVec
	// RowsByStatus counts rows written by the value of the worker's
	// status_field (config.Worker.StatusField), as the data carries it,
	// through a CappedLabel; labels: worker, status.
	RowsByStatus *prometheus.CounterVec

	// Handler metrics, recorded by the one decorator around every handler;
	// labels: worker, handler (and result for HandlerMessages).
	HandlerMessages *prometheus.CounterVec
	HandlerLatency  *prometheus.HistogramVec

	// Lookup cache; labels: worker, handler.
	CacheHits   *prometheus.CounterVec
	CacheMisses *prometheus.CounterVec

	// HTTP connections; labels: connection (and code for requests).
	HTTPRequests        *prometheus.CounterVec
	HTTPRequestDuration *prometheus.HistogramVec
	HTTPRetries         *prometheus.CounterVec

	// Enrichment worker; labels: worker (and reason for failures).
	EnrichEventsConsumed *prometheus.CounterVec
	EnrichEventsFailed   *prometheus.CounterVec

	// Delta table; label: table.
	DeltaCommitLatency    *prometheus.HistogramVec
	DeltaFilesWritten     *prometheus.CounterVec
	DeltaBytesWritten     *prometheus.CounterVec
	DeltaRowsWritten      *prometheus.CounterVec
	DeltaTableVersion     *prometheus.GaugeVec
	DeltaSchemaEvolutions *prometheus.CounterVec
	DeltaCommitConflicts  *prometheus.CounterVec
	// DeltaCompactions counts the auto-compactions of a table this
	// process ran; labels: table, result (committed, gave_way, failed).
	DeltaCompactions *prometheus.CounterVec
	// DeltaStorageUp is 1 while the table's storage answers, 0 while the
	// writer is retrying against unavailable storage; label: table.
	DeltaStorageUp *prometheus.GaugeVec
	// DuplicatesDropped counts rows a delta_writer did not write because
	// the table already held their key (its dedupe); labels: worker, table.
	DuplicatesDropped *prometheus.CounterVec

	// Skipped counts messages deliberately not turned into output (an event
	// type no plugin wants, a record the table already holds, a duplicate);
	// labels: worker, reason (a closed set per worker).
	Skipped *prometheus.CounterVec
	// Ready is 1 while the worker can do its work (/readyz answers 200) and
	// 0 otherwise; label: worker.
	Ready *prometheus.GaugeVec
	// Degraded is 1 while the worker works but a dependency it can do
	// without is failing (ClaimX lookups with on_error log_and_continue);
	// labels: worker, reason.
	Degraded *prometheus.GaugeVec
	// EnrichPaused is 1 while the enrichment worker has paused consuming
	// because the ClaimX API is unavailable; label: worker.
	EnrichPaused *prometheus.GaugeVec
	// PartitionOffsetMismatch is 1 for a partition the worker stopped
	// because the table's stored offset does not fit the partition's log
	// (topic recreated, data expired); labels: worker, topic, partition.
	PartitionOffsetMismatch *prometheus.GaugeVec
	// OffsetResets counts partitions started elsewhere than the table's
	// stored offset by an operator's --reset-offsets policy; labels: worker,
	// topic, policy.
	OffsetResets *prometheus.CounterVec
}

// latencyBuckets spans 1 ms to about 33 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 16)

// New creates kpipe's collectors and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return f.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return f.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return f.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	return &Metrics{
		PluginEventsTriggered: counter("itel_plugin_events_triggered_total", "Events that matched a plugin trigger.", "plugin"),
		PluginEventsPublished: counter("itel_plugin_events_published_total", "Events a plugin published to its topic.", "plugin"),
		PluginPublishErrors:   counter("itel_plugin_publish_errors_total", "Plugin publishes that failed.", "plugin"),
		PluginErrors:          counter("kpipe_plugin_errors_total", "Plugin runs that failed for a reason other than publishing.", "plugin"),

		WorkerMessagesConsumed:  counter("itel_worker_messages_consumed_total", "Messages the worker consumed from its input topic.", "worker"),
		WorkerMessagesProcessed: counter("itel_worker_messages_processed_total", "Messages the worker processed successfully.", "worker"),
		WorkerMessagesFailed:    counter("itel_worker_messages_failed_total", "Messages the worker sent to its error topic.", "worker"),
		WorkerClaimXAPICalls:    counter("itel_worker_claimx_api_calls_total", "Calls the worker made to the ClaimX API.", "worker"),
		WorkerClaimXAPIErrors:   counter("itel_worker_claimx_api_errors_total", "ClaimX API calls that failed after retries.", "worker"),
		WorkerClaimXAPILatency:  histogram("itel_worker_claimx_api_latency_seconds", "Latency of ClaimX API calls, retries included.", latencyBuckets, "worker"),
		WorkerDeltaWrites:       counter("itel_worker_delta_writes_total", "Rows the worker wrote to the Delta table.", "worker"),
		WorkerDeltaWriteErrors:  counter("itel_worker_delta_write_errors_total", "Delta table commits that failed.", "worker"),
		WorkerProcessingLatency: histogram("itel_worker_processing_latency_seconds", "Time from consuming a message to committing its row.", latencyBuckets, "worker"),

		ConsumerLag:  gauge("kpipe_consumer_lag", "Records in the partition not yet consumed by the group.", "group", "topic", "partition"),
		BatchSize:    histogram("kpipe_worker_batch_size", "Records per processed batch.", prometheus.ExponentialBuckets(1, 4, 9), "worker"),
		Errors:       counter("kpipe_worker_errors_total", "Failures by class.", "worker", "class"),
		ErrorRecords: counter("kpipe_error_records_total", "Records published to an error topic.", "worker", "topic"),
		RowsByStatus: counter("kpipe_worker_rows_by_status_total", "Rows written by the value of the worker's status field.", "worker", "status"),

		HandlerMessages: counter("kpipe_handler_messages_total", "Messages into and out of each handler.", "worker", "handler", "result"),
		HandlerLatency:  histogram("kpipe_handler_latency_seconds", "Time a handler spent on a batch.", latencyBuckets, "worker", "handler"),

		CacheHits:   counter("kpipe_lookup_cache_hits_total", "Lookups answered from the cache.", "worker", "handler"),
		CacheMisses: counter("kpipe_lookup_cache_misses_total", "Lookups that called the API.", "worker", "handler"),

		HTTPRequests:        counter("kpipe_http_requests_total", "HTTP requests by connection and status code.", "connection", "code"),
		HTTPRequestDuration: histogram("kpipe_http_request_duration_seconds", "Duration of one HTTP request attempt.", latencyBuckets, "connection"),
		HTTPRetries:         counter("kpipe_http_retries_total", "HTTP request attempts that were retried.", "connection"),

		EnrichEventsConsumed: counter("kpipe_enrich_events_consumed_total", "Events the enrichment worker consumed.", "worker"),
		EnrichEventsFailed:   counter("kpipe_enrich_events_failed_total", "Events sent to the enrichment error topic.", "worker", "reason"),

		DeltaCommitLatency:    histogram("kpipe_delta_commit_latency_seconds", "Time to write the data files and commit one Delta version.", latencyBuckets, "table"),
		DeltaFilesWritten:     counter("kpipe_delta_files_written_total", "Parquet data files written.", "table"),
		DeltaBytesWritten:     counter("kpipe_delta_bytes_written_total", "Bytes of Parquet data written.", "table"),
		DeltaRowsWritten:      counter("kpipe_delta_rows_written_total", "Rows committed to the table.", "table"),
		DeltaTableVersion:     gauge("kpipe_delta_table_version", "Latest table version this process committed or read.", "table"),
		DeltaSchemaEvolutions: counter("kpipe_delta_schema_evolutions_total", "Commits that changed the table schema.", "table"),
		DeltaCommitConflicts:  counter("kpipe_delta_commit_conflicts_total", "Commits that lost a race and were retried or refused.", "table"),
		DeltaCompactions:      counter("kpipe_delta_compactions_total", "Auto-compactions of small files: committed, gave way to a concurrent commit, or failed.", "table", "result"),
		DeltaStorageUp:        gauge("kpipe_delta_storage_up", "1 while the table storage answers, 0 while writes are retried.", "table"),
		DuplicatesDropped:     counter("kpipe_duplicates_dropped_total", "Rows not written because the table already held their dedupe key.", "worker", "table"),

		Skipped:                 counter("kpipe_skipped_total", "Messages deliberately not turned into output, by reason.", "worker", "reason"),
		Ready:                   gauge("kpipe_worker_ready", "1 while the worker is ready (its /readyz answers 200), else 0.", "worker"),
		Degraded:                gauge("kpipe_worker_degraded", "1 while a dependency the worker can do without is failing, by reason.", "worker", "reason"),
		EnrichPaused:            gauge("kpipe_enrich_paused", "1 while the enrichment worker has paused consuming because ClaimX is unavailable.", "worker"),
		PartitionOffsetMismatch: gauge("kpipe_partition_offset_mismatch", "1 for a partition stopped because the table's stored offset does not fit its log.", "worker", "topic", "partition"),
		OffsetResets:            counter("kpipe_offset_resets_total", "Partitions started away from the table's stored offset by an operator's reset policy.", "worker", "topic", "policy"),
	}
}

// OtherLabel is the label value a CappedLabel gives the values past its
// limit.
const OtherLabel = "other"

// DefaultMaxLabelValues is how many distinct values a label taken from data
// (such as RowsByStatus's status) keeps before the rest count as
// OtherLabel.
const DefaultMaxLabelValues = 32

// maxLabelValueBytes is the longest value a CappedLabel passes through.
const maxLabelValueBytes = 64

// CappedLabel keeps the cardinality of a label whose values come from data
// bounded: the first max distinct values are used as they are, and later
// ones, empty values, values over 64 bytes and values that are not UTF-8
// count as OtherLabel. It is safe for concurrent use.
type CappedLabel struct {
	max  int
	mu   sync.Mutex
	seen map[string]struct{}
}

// NewCappedLabel returns a CappedLabel keeping at most max distinct values
// (DefaultMaxLabelValues when max < 1).
func NewCappedLabel(max int) *CappedLabel {
	if max < 1 {
		max = DefaultMaxLabelValues
	}
	return &CappedLabel{max: max, seen: make(map[string]struct{}, max)}
}

// Value returns the label value to record v as.
func (c *CappedLabel) Value(v string) string {
	if v == "" || len(v) > maxLabelValueBytes || !utf8.ValidString(v) {
		return OtherLabel
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[v]; ok {
		return v
	}
	if len(c.seen) >= c.max {
		return OtherLabel
	}
	c.seen[v] = struct{}{}
	return v
}
