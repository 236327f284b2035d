//go:build linux

package chaos

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/sim"
)

// poison is one bad message the suite injected, and what became of it.
type poison struct {
	kind      string // not_json, invalid_utf8, too_deep, ...
	topic     string
	partition int32
	offset    int64
	eventID   string // "" when the message has none
	size      int
	sum       string // hex SHA-256 of the value: finds its error record by content

	outcome string // "row", "error", "" (unaccounted)
	class   string // the error record's class
	cut     bool   // the error record's original was cut
	moved   string // the error record's source when it is not where the producer was told
}

// sha is the hex SHA-256 of b, as error records carry it on cut originals.
func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// deep nests a value depth levels of objects deep.
func deep(depth int) string {
	return strings.Repeat(`{"d":`, depth) + `1` + strings.Repeat(`}`, depth)
}

// poisonRound injects every class of bad message, interleaved with the
// stream, into the input topic of the worker it is bad for: first the small
// ones together, then those near and over the 1 MB limits, each group
// waited for (every message a row or an error record) before the next, so
// that a message that stops a worker is named.
func (s *suite) poisonRound(round int) {
	all := s.makePoison(round)
	groups := [][]string{{"not_json", "invalid_utf8", "too_deep", "null_assignment", "unknown_type", "string_col_number", "type_conflict_object", "type_conflict_string"}, {"large_800k"}, {"over_1mb"}}
	for _, g := range groups {
		name := fmt.Sprintf("poison round %d: %s", round, strings.Join(g, ", "))
		if s.skip(name) {
			return
		}
		s.closeReady()
		var batch []poisonMsg
		for _, m := range all {
			if slices.Contains(g, m.p.kind[strings.IndexByte(m.p.kind, '/')+1:]) {
				batch = append(batch, m)
			}
		}
		ps := s.produce(round, batch)
		if s.waitAccounted(name, ps) {
			s.expectReady(time.Now(), "healthy after "+name)
		}
	}
}

// waitAccounted waits until every poison message of ps is a row or an
// error record, while the table moves; a table that stops moving for 20 s
// (or 2 min in all) fails the "poison" check and stops the run's
// scenarios.
func (s *suite) waitAccounted(name string, ps []*poison) bool {
	start := time.Now()
	var open []string
	ok, since := s.pollMoving(2*time.Minute, func() bool {
		rows, err := s.tableRows(s.ctx)
		if err != nil {
			return false
		}
		ix := s.errorRecords(s.ctx)
		open = open[:0]
		for _, p := range ps {
			if !s.account(p, rows, ix) {
				open = append(open, p.kind)
			}
		}
		return len(open) == 0
	})
	if ok && len(open) == 0 {
		var got []string
		for _, p := range ps {
			got = append(got, fmt.Sprintf("%s → %s %s", p.kind, p.outcome, p.class))
		}
		s.t.Logf("[+%s] %s: all accounted in %s: %s", time.Since(s.begin).Round(time.Second), name, time.Since(start).Round(time.Millisecond), strings.Join(got, "; "))
		return true
	}
	s.fail("poison", "%s: %s not a row or an error record after %s, the table last moved %s ago", name, strings.Join(open, ", "), time.Since(start).Round(time.Second), since.Round(time.Second))
	s.mu.Lock()
	if s.stuck == "" {
		s.stuck, s.stuckCheck = name, "poison"
	}
	s.mu.Unlock()
	s.logTails()
	return false
}

type poisonMsg struct {
	rec *kgo.Record
	p   *poison
}

// makePoison builds every bad message of a round.
func (s *suite) makePoison(round int) []poisonMsg {
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	// Ids name the round and the worker the message is bad for.
	target := "enrich"
	id := func(kind string) string { return fmt.Sprintf("chaos-%d-%s-%s", round, target, kind) }

	// claimx.events: an otherwise good task event of a real assignment.
	m := s.manifest()
	good := m.EventsForTemplate(templateID)[round]
	event := func(kind, eventType, taID, extra string) []byte {
		return fmt.Appendf(nil, `{"event_id":%q,"event_type":%q,"project_id":%q,"ingested_at":"2026-01-05T09:00:00Z","task_assignment_id":%s,"media_id":null,"video_collaboration_id":null,"master_file_name":null,"raw_data":{"task_status":"assigned"%s}}`,
			id(kind), eventType, good.ProjectID, taID, extra)
	}
	ta := fmt.Sprint(good.AssignmentID)
	enrichPoison := []struct {
		kind  string
		value []byte
	}{
		{"not_json", []byte("chaos: not json {" + id("not_json"))},
		{"invalid_utf8", event("invalid_utf8", "CUSTOM_TASK_ASSIGNED\xff\xfe", ta, "")},
		{"too_deep", event("too_deep", "CUSTOM_TASK_ASSIGNED", ta, `,"nested":`+deep(100))},
		{"large_800k", event("large_800k", "CUSTOM_TASK_ASSIGNED", ta, `,"pad":"`+strings.Repeat("x", 800_000)+`"`)},
		{"over_1mb", event("over_1mb", "CUSTOM_TASK_ASSIGNED", ta, `,"pad":"`+strings.Repeat("x", 1_500_000)+`"`)},
		{"null_assignment", event("null_assignment", "CUSTOM_TASK_ASSIGNED", "null", "")},
		{"unknown_type", event("unknown_type", "CHAOS_UNKNOWN_TYPE", ta, "")},
	}
	var out []poisonMsg
	for _, e := range enrichPoison {
		p := &poison{kind: "enrich/" + e.kind, topic: topicEvents, size: len(e.value), sum: sha(e.value)}
		if e.kind != "not_json" {
			p.eventID = id(e.kind)
		}
		out = append(out, poisonMsg{&kgo.Record{Topic: topicEvents, Key: []byte(good.ProjectID), Value: e.value}, p})
	}

	// itel.cabinet.task.tracking: a real tracking message, changed.
	target = "worker"
	tmpl := s.trackingSample(ctx)
	if tmpl != nil {
		track := func(kind string, change func(map[string]any)) []byte {
			var v map[string]any
			d := json.NewDecoder(bytes.NewReader(tmpl))
			d.UseNumber()
			if err := d.Decode(&v); err != nil {
				s.t.Fatalf("tracking sample: %v", err)
			}
			v["event_id"] = id(kind)
			change(v)
			b, err := json.Marshal(v)
			if err != nil {
				s.t.Fatal(err)
			}
			return b
		}
		task := func(v map[string]any) map[string]any {
			if t, ok := v["task"].(map[string]any); ok {
				return t
			}
			t := map[string]any{}
			v["task"] = t
			return t
		}
		field := fmt.Sprintf("chaos_conflict_%d", round)
		utf8Bad := track("invalid_utf8", func(map[string]any) {})
		utf8Bad = bytes.Replace(utf8Bad, []byte(id("invalid_utf8")), []byte(id("invalid_utf8")+"\xff"), 1)
		trackPoison := []struct {
			kind  string
			value []byte
		}{
			{"not_json", []byte("chaos: not json [" + id("not_json"))},
			{"invalid_utf8", utf8Bad},
			{"too_deep", track("too_deep", func(v map[string]any) { task(v)["nested"] = json.RawMessage(deep(100)) })},
			{"large_800k", track("large_800k", func(v map[string]any) { task(v)["pad"] = strings.Repeat("y", 800_000) })},
			{"over_1mb", track("over_1mb", func(v map[string]any) { task(v)["pad"] = strings.Repeat("y", 1_500_000) })},
			{"string_col_number", track("string_col_number", func(v map[string]any) { v["task_name"] = 12345 })},
			// The two of a type conflict go together: one flush.
			{"type_conflict_object", track("type_conflict_object", func(v map[string]any) { task(v)[field] = map[string]any{"a": 1} })},
			{"type_conflict_string", track("type_conflict_string", func(v map[string]any) { task(v)[field] = "text" })},
		}
		key := []byte("chaos-tracking")
		for _, e := range trackPoison {
			p := &poison{kind: "worker/" + e.kind, topic: topicTracking, size: len(e.value), sum: sha(e.value)}
			if e.kind != "not_json" {
				p.eventID = id(e.kind)
				if e.kind == "invalid_utf8" {
					p.eventID += "\xff"
				}
			}
			out = append(out, poisonMsg{&kgo.Record{Topic: topicTracking, Key: key, Value: e.value}, p})
		}
	} else {
		s.note("round %d: no tracking message to model the tracking worker's poison on; skipped", round)
	}
	return out
}

// produce injects a group of poison messages in one produce call (the two
// of a type conflict land in one partition, next to each other).
func (s *suite) produce(round int, batch []poisonMsg) []*poison {
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	recs := make([]*kgo.Record, len(batch))
	of := make(map[*kgo.Record]*poison, len(batch))
	for i, m := range batch {
		recs[i] = m.rec
		of[m.rec] = m.p
	}
	var ps []*poison
	// ProduceSync's results come in the order the records were answered,
	// not the order given: each is matched by its record.
	for _, r := range s.kcl.ProduceSync(ctx, recs...) {
		p := of[r.Record]
		if r.Err != nil {
			s.note("round %d: producing poison %s (%d bytes): %v", round, p.kind, p.size, r.Err)
			continue
		}
		p.partition, p.offset = r.Record.Partition, r.Record.Offset
		ps = append(ps, p)
	}
	s.mu.Lock()
	s.poisons = append(s.poisons, ps...)
	s.mu.Unlock()
	return ps
}

// trackingSample reads one message of the tracking topic.
func (s *suite) trackingSample(ctx context.Context) []byte {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokerAddr), kgo.ConsumeTopics(topicTracking),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	var out []byte
	poll(ctx, time.Minute, 0, func() bool {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			if out == nil && bytes.HasPrefix(r.Value, []byte("{")) && json.Valid(r.Value) {
				out = r.Value
			}
		})
		return out != nil
	})
	return out
}

// manifest is the simulator's ground truth, rebuilt from the seed.
func (s *suite) manifest() sim.Manifest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.truth == nil {
		m := sim.New(sim.Options{Seed: int64(s.seed % 1000), Events: worldEvents}).Manifest()
		s.truth = &m
	}
	return *s.truth
}
