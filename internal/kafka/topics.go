package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topic names kpipe's code refers to; the rest come from configuration.
const (
	TopicEvents           = "claimx.events"
	TopicEnrichmentErrors = "claimx.enrichment.errors"
)

// DefaultReplicationFactor is used when a topic does not name one.
const DefaultReplicationFactor = 3

// TopicSpec describes one topic of config/topics.yaml.
type TopicSpec struct {
	// Name is the Kafka topic name. Required.
	Name string `yaml:"name"`
	// Partitions is the partition count. Required, at least 1.
	Partitions int32 `yaml:"partitions"`
	// ReplicationFactor is the replicas per partition, capped by EnsureTopics
	// at the number of brokers. Default 3.
	ReplicationFactor int16 `yaml:"replication_factor"`
	// Retention is how long records are kept (Kafka retention.ms); written as
	// a Go duration ("72h") or days ("7d"); "-1" keeps forever. Required.
	Retention Retention `yaml:"retention"`
	// CleanupPolicy is delete or compact. Default delete.
	CleanupPolicy string `yaml:"cleanup_policy"`
	// Configs are other topic configs, by Kafka name.
	Configs map[string]string `yaml:"configs"`
}

// Retention is a topic retention time; negative means forever.
type Retention time.Duration

// UnmarshalText accepts "7d", "12h", "90m" or "-1".
func (r *Retention) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "-1" {
		*r = Retention(-1)
		return nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("retention %q: want a positive number of days such as 7d", s)
		}
		*r = Retention(time.Duration(n * float64(24*time.Hour)))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("retention %q: want a duration such as 7d or 72h, or -1", s)
	}
	*r = Retention(d)
	return nil
}

// Ms is the retention in milliseconds as Kafka's retention.ms wants it.
func (r Retention) Ms() string {
	if r < 0 {
		return "-1"
	}
	return strconv.FormatInt(time.Duration(r).Milliseconds(), 10)
}

// configs is the full set of topic configs the spec asks for.
func (s TopicSpec) configs() map[string]*string {
	m := make(map[string]*string, len(s.Configs)+2)
	for k, v := range s.Configs {
		m[k] = kadm.StringPtr(v)
	}
	m["retention.ms"] = kadm.StringPtr(s.Retention.Ms())
	policy := s.CleanupPolicy
	if policy == "" {
		policy = "delete"
	}
	m["cleanup.policy"] = kadm.StringPtr(policy)
	return m
}

// Validate reports every problem of the spec, joined.
func (s TopicSpec) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if s.Partitions < 1 {
		errs = append(errs, fmt.Errorf("topic %q: partitions must be at least 1", s.Name))
	}
	if s.ReplicationFactor < 0 {
		errs = append(errs, fmt.Errorf("topic %q: replication_factor must be positive", s.Name))
	}
	if s.Retention == 0 {
		errs = append(errs, fmt.Errorf("topic %q: retention is required", s.Name))
	}
	switch s.CleanupPolicy {
	case "", "delete", "compact", "compact,delete", "delete,compact":
	default:
		errs = append(errs, fmt.Errorf("topic %q: cleanup_policy %q: want delete or compact", s.Name, s.CleanupPolicy))
	}
	return errors.Join(errs...)
}

type topicsFile struct {
	Topics []TopicSpec `yaml:"topics"`
}

// LoadTopics reads a topics file such as config/topics.yaml, strictly:
// unknown fields, duplicate names and invalid specs are errors, all reported
// at once.
func LoadTopics(path string) ([]TopicSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading topics: %w", err)
	}
	specs, err := ParseTopics(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return specs, nil
}

// ParseTopics decodes the contents of a topics file; see LoadTopics.
func ParseTopics(b []byte) ([]TopicSpec, error) {
	var f topicsFile
	if err := yaml.NewDecoder(bytes.NewReader(b), yaml.DisallowUnknownField()).Decode(&f); err != nil {
		return nil, fmt.Errorf("decoding topics: %w", err)
	}
	var errs []error
	seen := make(map[string]bool, len(f.Topics))
	for i := range f.Topics {
		s := &f.Topics[i]
		if s.ReplicationFactor == 0 {
			s.ReplicationFactor = DefaultReplicationFactor
		}
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("topic %q is listed twice", s.Name))
		}
		seen[s.Name] = true
	}
	if len(f.Topics) == 0 {
		errs = append(errs, errors.New("no topics listed"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f.Topics, nil
}

// EnsureTopics makes the cluster hold every topic of specs: missing topics
// are created (replication factor capped at maxReplication, or at the number
// of brokers when maxReplication <= 0), existing ones gain partitions when
// they have fewer and get the spec's retention and cleanup policy. It returns
// the names of the topics it created; calling it again creates nothing.
func EnsureTopics(ctx context.Context, cl *kgo.Client, specs []TopicSpec, maxReplication int) (created []string, err error) {
	res, err := EnsureTopicsEach(ctx, cl, specs, maxReplication)
	for _, r := range res {
		if r.State == TopicCreated {
			created = append(created, r.Name)
		}
	}
	slices.Sort(created)
	return created, err
}

func ensureTopic(ctx context.Context, adm *kadm.Client, s TopicSpec, existing map[string]int32, maxReplication int, created *[]string) error {
	rf := s.ReplicationFactor
	if rf <= 0 {
		rf = DefaultReplicationFactor
	}
	rf = int16(min(int(rf), maxReplication))
	have, ok := existing[s.Name]
	if !ok {
		resp, err := adm.CreateTopic(ctx, s.Partitions, rf, s.configs(), s.Name)
		if err == nil {
			err = resp.Err
		}
		if err == nil {
			*created = append(*created, s.Name)
			return nil
		}
		if !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating: %w", err)
		}
		// Created concurrently by someone else: bring its settings in line.
	} else if have < s.Partitions {
		resp, err := adm.UpdatePartitions(ctx, int(s.Partitions), s.Name)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("growing from %d to %d partitions: %w", have, s.Partitions, err)
		}
	}
	alters := make([]kadm.AlterConfig, 0, len(s.Configs)+2)
	for k, v := range s.configs() {
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: v})
	}
	resp, err := adm.AlterTopicConfigs(ctx, alters, s.Name)
	if err == nil {
		for _, r := range resp {
			if r.Err != nil {
				err = r.Err
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("setting configs: %w", err)
	}
	return nil
}

// PartitionBounds lists the log start and end offsets of topic's
// partitions.
func PartitionBounds(ctx context.Context, adm *kadm.Client, topic string) (starts, ends map[int32]int64, err error) {
	so, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = so.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing the start offsets of %s: %w", topic, err)
	}
	eo, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = eo.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing the end offsets of %s: %w", topic, err)
	}
	starts, ends = map[int32]int64{}, map[int32]int64{}
	so.Each(func(o kadm.ListedOffset) { starts[o.Partition] = o.Offset })
	eo.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return starts, ends, nil
}
