package pipeline

import (
	"fmt"
	"time"

	"kpipe/internal/delta"
	"kpipe/internal/dlq"
)

// PartitionSpec derives one partition column of a delta_writer's table from
// a timestamp column:
//
//	partition_by:
//	  - {column: year, from: event_timestamp, part: year}
//	  - {column: month, from: event_timestamp, part: month}
//	  - {column: day, from: event_timestamp, part: day}
//
// The value is the part of the timestamp's UTC time, as an integer coerced
// to the column's type; a row whose timestamp is null leaves the column
// null.
type PartitionSpec struct {
	// Column is the partition column the writer fills. Required; not a
	// column of column_mapping.
	Column string `yaml:"column"`
	// From is the timestamp column (of column_mapping) it derives from.
	// Required.
	From string `yaml:"from"`
	// Part is year, month (1–12), day (of the month, 1–31) or hour
	// (0–23). Required.
	Part string `yaml:"part"`
}

// timePart is a part of a UTC time a partition column holds.
type timePart uint8

const (
	partYear timePart = iota
	partMonth
	partDay
	partHour
)

func parseTimePart(s string) (timePart, error) {
	switch s {
	case "year":
		return partYear, nil
	case "month":
		return partMonth, nil
	case "day":
		return partDay, nil
	case "hour":
		return partHour, nil
	}
	return 0, fmt.Errorf("part %q: want year, month, day or hour", s)
}

// of returns the part of t, which is in UTC.
func (p timePart) of(t time.Time) int {
	switch p {
	case partYear:
		return t.Year()
	case partMonth:
		return int(t.Month())
	case partDay:
		return t.Day()
	}
	return t.Hour()
}

// defaultPartitionTimestamp is partition_timestamp's default.
const defaultPartitionTimestamp = "event_timestamp"

// partitionSpecs returns partition_by, or its default: year, month and day
// from partition_timestamp.
func (c *DeltaWriterConfig) partitionSpecs() []PartitionSpec {
	if len(c.PartitionBy) > 0 {
		return c.PartitionBy
	}
	from := c.PartitionTimestamp
	if from == "" {
		from = defaultPartitionTimestamp
	}
	return []PartitionSpec{
		{Column: "year", From: from, Part: "year"},
		{Column: "month", From: from, Part: "month"},
		{Column: "day", From: from, Part: "day"},
	}
}

// validatePartitions checks partition_by and partition_timestamp.
func (c *DeltaWriterConfig) validatePartitions() []error {
	var errs []error
	if len(c.PartitionBy) > 0 && c.PartitionTimestamp != "" {
		errs = append(errs, fmt.Errorf("partition_timestamp %q: not used with partition_by (give each column's from instead)", c.PartitionTimestamp))
	}
	seen := map[string]bool{}
	for i, p := range c.PartitionBy {
		at := fmt.Sprintf("partition_by[%d]", i)
		if p.Column == "" || p.From == "" || p.Part == "" {
			errs = append(errs, fmt.Errorf("%s: column, from and part are required", at))
			continue
		}
		if _, err := parseTimePart(p.Part); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
		}
		if seen[p.Column] {
			errs = append(errs, fmt.Errorf("%s: column %q is derived twice", at, p.Column))
		}
		seen[p.Column] = true
		if _, ok := c.ColumnMapping[p.Column]; ok {
			errs = append(errs, fmt.Errorf("%s: column %q is also in column_mapping; a partition column is derived or mapped, not both", at, p.Column))
		}
		if _, ok := c.ColumnMapping[p.From]; !ok {
			errs = append(errs, fmt.Errorf("%s: from %q is not a column of column_mapping", at, p.From))
		}
	}
	return errs
}

// partitionColumn is a checked PartitionSpec.
type partitionColumn struct {
	column, from string
	part         timePart
}

// partitionColumns returns the partition columns to derive; the config was
// validated.
func (c *DeltaWriterConfig) partitionColumns() []partitionColumn {
	specs := c.partitionSpecs()
	out := make([]partitionColumn, len(specs))
	for i, s := range specs {
		part, _ := parseTimePart(s.Part) // checked by Validate
		out[i] = partitionColumn{column: s.Column, from: s.From, part: part}
	}
	return out
}

// derivePartitions fills the row's partition columns from its (coerced)
// timestamp columns. A column the table lacks is left out, and so is one
// whose timestamp is null.
func (w *DeltaWriter) derivePartitions(plan *rowPlan, vals []any, memo *rowMemo) error {
	for i, d := range w.partitions {
		f := plan.parts[i]
		if f == nil || w.fromAt[i] < 0 {
			continue
		}
		ts, ok := vals[w.fromAt[i]].(time.Time)
		if !ok {
			continue
		}
		n := d.part.of(ts.UTC())
		if memo != nil && memo.partOut[i] != nil && memo.partIn[i] == n {
			vals[w.partAt[i]] = memo.partOut[i]
			continue
		}
		cv, err := delta.CoerceValue(f.Type, int64(n), f.Name, delta.CastNone)
		if err != nil {
			return Errorf(dlq.ClassSchemaConflict, f.Name, "partition column %q: %w", f.Name, err)
		}
		if memo != nil {
			memo.partIn[i], memo.partOut[i] = n, cv
		}
		vals[w.partAt[i]] = cv
	}
	return nil
}
