package stack

import (
	"fmt"
	"strings"

	"kpipe/internal/metrics"
)

// Status implements metrics.StatusProvider: the enrichment worker's part
// of the live page.
func (e *Enricher) Status() metrics.Status { return e.w.Status() }

// status is the stack's own part of the live page: where its parts are and
// how many events the simulator generated.
func (s *Stack) status() metrics.Status {
	st := metrics.Status{Title: "kpipe up"}
	generated := "0"
	if p := s.pub; p != nil {
		generated = fmt.Sprint(p.Published())
	}
	st.Facts = []metrics.Fact{
		{Name: "events generated", Value: generated},
		{Name: "table", Value: s.info.Table},
		{Name: "Kafka brokers", Value: strings.Join(s.info.Brokers, ",")},
		{Name: "ClaimX simulator", Value: s.info.APIURL},
		{Name: "seed", Value: fmt.Sprint(s.info.Seed)},
		{Name: "groups", Value: s.info.EnrichGroup + ", " + s.info.TrackGroup},
	}
	return st
}
