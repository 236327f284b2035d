package delta

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Description summarises a snapshot. Its JSON form is the stable output of
// `kpipe table describe --json`: fields are only ever added.
type Description struct {
	Location         string            `json:"location"`
	Version          int64             `json:"version"`
	Timestamp        time.Time         `json:"timestamp"`
	ID               string            `json:"id"`
	Name             string            `json:"name,omitempty"`
	Description      string            `json:"description,omitempty"`
	Protocol         Protocol          `json:"protocol"`
	Schema           json.RawMessage   `json:"schema"`
	PartitionColumns []string          `json:"partitionColumns"`
	Properties       map[string]string `json:"properties"`
	NumFiles         int               `json:"numFiles"`
	// NumRows sums the files' numRecords stats less the rows their
	// deletion vectors remove; RowsExact is false when a file has no stats.
	NumRows        int64            `json:"numRows"`
	RowsExact      bool             `json:"rowsExact"`
	SizeBytes      int64            `json:"sizeBytes"`
	Txns           map[string]int64 `json:"txns"`
	LastCheckpoint *int64           `json:"lastCheckpoint"`
}

// Describe summarises the snapshot of the table at location.
func Describe(location string, s *Snapshot) Description {
	size, rows, exact := s.Totals()
	md := s.Metadata()
	d := Description{
		Location:         location,
		Version:          s.Version(),
		Timestamp:        s.Timestamp(),
		ID:               md.ID,
		Name:             md.Name,
		Description:      md.Description,
		Protocol:         s.Protocol(),
		Schema:           json.RawMessage(s.Schema().SchemaString()),
		PartitionColumns: nonNil(md.PartitionColumns),
		Properties:       md.Configuration,
		NumFiles:         s.NumFiles(),
		NumRows:          rows,
		RowsExact:        exact,
		SizeBytes:        size,
		Txns:             s.Txns(),
	}
	if d.Properties == nil {
		d.Properties = map[string]string{}
	}
	if cv := s.CheckpointVersion(); cv >= 0 {
		d.LastCheckpoint = &cv
	}
	return d
}

// SortedProperties returns the property keys in order, for display.
func (d Description) SortedProperties() []string { return slices.Sorted(maps.Keys(d.Properties)) }
