//go:build linux

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/delta"
	"kpipe/internal/dlq"
)

// readTopic reads a topic's committed records from the start to its end
// as it is now. It keeps the control records so that every offset up to
// the end is seen (a run of aborted records reads as nothing but their
// abort marker), and it gives up only when nothing new arrived for
// readQuiet: a slow poll on a loaded machine does not end the read early.
func (s *suite) readTopic(ctx context.Context, topic string) []*kgo.Record {
	ends, err := s.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		s.t.Fatalf("end offsets of %s: %v", topic, err)
	}
	need := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			need[o.Partition] = o.Offset
		}
	})
	if len(need) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokerAddr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	seen := map[int32]int64{}
	last := time.Now()
	for {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			last = time.Now()
			seen[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
		var short []string
		for p, end := range need {
			if seen[p] < end {
				short = append(short, fmt.Sprintf("%d at %d of %d", p, seen[p], end))
			}
		}
		if len(short) == 0 || ctx.Err() != nil {
			return out
		}
		if time.Since(last) > readQuiet {
			sort.Strings(short)
			s.note("reading %s: nothing new for %s, partitions short of their end offsets: %s", topic, readQuiet, strings.Join(short, ", "))
			return out
		}
	}
}

// readQuiet is how long readTopic waits for a record before it gives up
// on the rest of a topic (an open transaction holds the last stable
// offset back).
const readQuiet = 30 * time.Second

// tableRows counts the table's rows by event_id.
func (s *suite) tableRows(ctx context.Context) (map[string]int, error) {
	store, err := delta.NewLocalStorage(s.data + "/delta/" + tableName)
	if err != nil {
		return nil, err
	}
	tb, err := delta.Open(ctx, store)
	if err != nil {
		return nil, err
	}
	defer tb.Close(ctx)
	snap, err := tb.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := delta.ReadRows(ctx, store, snap)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		id, _ := r["event_id"].(string)
		out[id]++
	}
	return out, nil
}

// errorRecords reads both error topics: the decoded records by the source
// message's key (topic/partition/offset), and the event ids of the
// originals.
type errorIndex struct {
	bySource map[string][]*dlq.Record
	byEvent  map[string][]*dlq.Record
	// bySum finds records by the SHA-256 of their original: the content
	// of a message, whatever offset the broker gave it.
	bySum    map[string][]*dlq.Record
	total    int
	cut      int
	badClass int
	tooBig   int
	classes  map[string]int
}

func (s *suite) errorRecords(ctx context.Context) errorIndex {
	ix := errorIndex{bySource: map[string][]*dlq.Record{}, byEvent: map[string][]*dlq.Record{}, bySum: map[string][]*dlq.Record{}, classes: map[string]int{}}
	for _, topic := range []string{topicEnrichErrs, topicTrackErrs} {
		for _, r := range s.readTopic(ctx, topic) {
			ix.total++
			if len(r.Value) > dlq.DefaultMaxRecordBytes {
				ix.tooBig++
			}
			rec := new(dlq.Record)
			if err := json.Unmarshal(r.Value, rec); err != nil {
				ix.badClass++
				continue
			}
			if rec.Class == "" {
				ix.badClass++
			}
			ix.classes[rec.Class]++
			if rec.OriginalTruncated {
				ix.cut++
			}
			k := string(rec.RecordKey())
			ix.bySource[k] = append(ix.bySource[k], rec)
			if rec.OriginalSHA256 != "" {
				ix.bySum[rec.OriginalSHA256] = append(ix.bySum[rec.OriginalSHA256], rec)
			} else if orig, whole := rec.OriginalBytes(); whole {
				sum := sha(orig)
				ix.bySum[sum] = append(ix.bySum[sum], rec)
			}
			if orig, _ := rec.OriginalBytes(); len(orig) > 0 {
				var ev struct {
					EventID string `json:"event_id"`
				}
				if json.Unmarshal(orig, &ev) == nil && ev.EventID != "" {
					ix.byEvent[ev.EventID] = append(ix.byEvent[ev.EventID], rec)
				}
			}
		}
	}
	return ix
}

// figures are the run's results.
type figures struct {
	produced, expected, inTable, lost, duplicated, unexpected int
	viaErrors, replayed, blocked                              int
	errors                                                    errorIndex
	poisonByKind                                              map[string]int
	poisonOK, poisonRows, poisonErrs                          int
	samples, mismatches                                       int
}

// verify checks the table and the error topics against the manifest.
func (s *suite) verify() {
	t := s.t
	ctx, cancel := context.WithTimeout(s.ctx, 8*time.Minute)
	defer cancel()
	poisonAt := map[string]*poison{}
	for _, p := range s.poisons {
		poisonAt[fmt.Sprintf("%s/%d/%d", p.topic, p.partition, p.offset)] = p
	}

	// What the stream produced, and so what the table must hold.
	produced := map[string]*kgo.Record{}
	for _, r := range s.readTopic(ctx, topicEvents) {
		if poisonAt[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] != nil {
			continue
		}
		var ev struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(r.Value, &ev) == nil && produced[ev.EventID] == nil {
			produced[ev.EventID] = r
		}
	}
	var expected []string
	for _, e := range s.manifest().EventsForTemplate(templateID) {
		if produced[e.EventID] != nil {
			expected = append(expected, e.EventID)
		}
	}
	s.fig.produced, s.fig.expected = len(produced), len(expected)
	t.Logf("the stream produced %d events, %d of them template %d events the table must hold", len(produced), len(expected), templateID)

	// Drain: until every expected event is a row or an error record, and
	// every poison message is accounted for.
	var rows map[string]int
	var ix errorIndex
	missing := func() (events, poisons int) {
		var err error
		if rows, err = s.tableRows(ctx); err != nil {
			t.Logf("reading the table: %v", err)
			return -1, -1
		}
		ix = s.errorRecords(ctx)
		for _, id := range expected {
			if rows[id] == 0 && len(ix.byEvent[id]) == 0 {
				events++
			}
		}
		for _, p := range s.poisons {
			if !s.account(p, rows, ix) {
				poisons++
			}
		}
		return events, poisons
	}
	var me, mp int
	drained, since := s.pollMoving(4*time.Minute, func() bool {
		me, mp = missing()
		return me == 0 && mp == 0
	})
	if !drained {
		t.Logf("drain: %d expected events are neither rows nor error records, %d poison messages unaccounted (the table last moved %s ago)", me, mp, since.Round(time.Second))
	}

	// Events that went to an error topic instead of the table (API
	// failures) are replayed, as an operator would once ClaimX is back.
	var viaErrors []string
	for _, id := range expected {
		if rows[id] == 0 && len(ix.byEvent[id]) > 0 {
			viaErrors = append(viaErrors, id)
		}
	}
	s.fig.viaErrors = len(viaErrors)
	if len(viaErrors) > 0 {
		// A ClaimX failure past the retry budget is a legitimate error
		// record (replayed below); any other class for a good event is not.
		classes := map[string]int{}
		var wrong []string
		for _, id := range viaErrors {
			c := ix.byEvent[id][0].Class
			classes[c]++
			if !claimxClasses[c] {
				wrong = append(wrong, id)
			}
		}
		t.Logf("%d expected events went to an error topic instead of the table (%s); replaying them", len(viaErrors), joinCounts(classes))
		if len(wrong) > 0 {
			s.fail("errors", "%d good events went to an error topic with a class that is not a ClaimX failure (%s), e.g. %s", len(wrong), joinCounts(classes), wrong[0])
		}
		out, err := runOnce(ctx, s.bin, s.env, 3*time.Minute, "--config-dir", s.cfgDir, "dlq", "replay", "--topic", topicEnrichErrs)
		t.Logf("kpipe dlq replay --topic %s: %v\n%s", topicEnrichErrs, err, strings.TrimSpace(out))
		s.pollMoving(3*time.Minute, func() bool {
			var err error
			rows, err = s.tableRows(ctx)
			if err != nil {
				return false
			}
			n := 0
			for _, id := range viaErrors {
				if rows[id] > 0 {
					n++
				}
			}
			s.fig.replayed = n
			return n == len(viaErrors)
		})
	}

	// The figures.
	rows, err := s.tableRows(ctx)
	if err != nil {
		t.Fatalf("reading the table: %v", err)
	}
	ix = s.errorRecords(ctx)
	s.fig.errors = ix
	want := map[string]bool{}
	var lost []string
	for _, id := range expected {
		want[id] = true
		if rows[id] == 0 {
			lost = append(lost, id)
		} else {
			s.fig.inTable++
		}
	}
	poisonIDs := map[string]bool{}
	for _, p := range s.poisons {
		if p.eventID != "" {
			poisonIDs[p.eventID] = true
			poisonIDs[strings.ToValidUTF8(p.eventID, "\uFFFD")] = true
		}
	}
	// A row is unexpected when the simulator never made its event and the
	// suite did not inject it; a row of a manifest event the read-back of
	// claimx.events missed is only noted.
	inManifest := map[string]bool{}
	for _, e := range s.manifest().EventsForTemplate(templateID) {
		inManifest[e.EventID] = true
	}
	var dups, unexpected []string
	unread := 0
	for id, n := range rows {
		if n > 1 {
			s.fig.duplicated += n - 1
			dups = append(dups, fmt.Sprintf("%s×%d", id, n))
		}
		switch {
		case want[id] || poisonIDs[id]:
		case inManifest[id]:
			unread++
		default:
			unexpected = append(unexpected, id)
		}
	}
	if unread > 0 {
		s.note("%d rows are of manifest events the suite's read of %s did not see", unread, topicEvents)
	}
	sort.Strings(dups)
	sort.Strings(unexpected)
	s.fig.unexpected = len(unexpected)
	if len(lost) > 0 {
		// Lost is what a worker moved past without a row or an error
		// record; what no worker got to yet is blocked behind a stopped
		// pipeline.
		gone, blocked, inErrors := s.classifyMissing(ctx, lost, produced, ix)
		s.fig.lost, s.fig.blocked = len(gone), len(blocked)
		if len(gone) > 0 {
			s.fail("lost", "%d expected events are in neither the table nor an error topic, and the pipeline moved past them, e.g. %s", len(gone), strings.Join(gone[:min(5, len(gone))], ", "))
		}
		if inErrors > 0 {
			check := "replay"
			s.mu.Lock()
			if s.stuck != "" {
				check = s.stuckCheck
			}
			s.mu.Unlock()
			s.fail(check, "%d expected events are only in an error topic, not in the table, after kpipe dlq replay", inErrors)
		}
		if len(blocked) > 0 {
			check, cause := "progress", "the pipeline stopped"
			s.mu.Lock()
			if s.stuck != "" {
				check, cause = s.stuckCheck, "the pipeline stopped progressing during "+s.stuck
			}
			s.mu.Unlock()
			s.fail(check, "%d expected events never processed because %s, e.g. %s", len(blocked), cause, strings.Join(blocked[:min(3, len(blocked))], ", "))
		}
	}
	if len(dups) > 0 {
		s.fail("duplicated", "%d rows written twice or more: %s", s.fig.duplicated, strings.Join(dups[:min(5, len(dups))], ", "))
	}
	if len(unexpected) > 0 {
		s.fail("unexpected", "%d rows of events neither in the manifest nor injected: %s", len(unexpected), strings.Join(unexpected[:min(5, len(unexpected))], ", "))
	}
	if ix.tooBig > 0 || ix.badClass > 0 {
		s.fail("poison", "error records: %d over %d bytes, %d without a class or undecodable", ix.tooBig, dlq.DefaultMaxRecordBytes, ix.badClass)
	}

	// Every poison message: a row or an error record with its class.
	s.fig.poisonByKind = map[string]int{}
	for _, p := range s.poisons {
		kind := p.kind[strings.IndexByte(p.kind, '/')+1:]
		s.fig.poisonByKind[kind]++
		if !s.account(p, rows, ix) {
			s.fail("poison", "%s (%s/%d/%d, %d bytes) is neither a row nor an error record", p.kind, p.topic, p.partition, p.offset, p.size)
			continue
		}
		switch p.outcome {
		case "row":
			s.fig.poisonRows++
			s.fig.poisonOK++
		case "row_altered":
			s.fig.poisonRows++
			s.fail("poison", "%s became a row with its invalid UTF-8 replaced by U+FFFD (want a malformed error record with the original bytes)", p.kind)
		case "error":
			s.fig.poisonErrs++
			s.fig.poisonOK++
		}
	}
	var lines []string
	moved := 0
	for _, p := range s.poisons {
		where := ""
		if p.moved != "" {
			moved++
			where = fmt.Sprintf(" (acknowledged at %s/%d/%d, met at %s)", p.topic, p.partition, p.offset, p.moved)
		}
		lines = append(lines, fmt.Sprintf("  %-32s %8d B → %s %s%s%s", p.kind, p.size, orDash(p.outcome), p.class, map[bool]string{true: " (original cut)"}[p.cut], where))
	}
	if moved > 0 {
		// Where a reader of the topic finds the content tells whether the
		// produce answer or the consumer's offset is off.
		found := map[string]string{}
		for _, topic := range []string{topicEvents, topicTracking} {
			for _, r := range s.readTopic(ctx, topic) {
				if len(r.Value) > 100_000 || bytes.Contains(r.Value, []byte("chaos-")) {
					found[sha(r.Value)] = fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
				}
			}
		}
		for _, p := range s.poisons {
			if p.moved != "" {
				t.Logf("%s: acknowledged at %s/%d/%d, its error record names %s, a reader of the topic finds it at %s", p.kind, p.topic, p.partition, p.offset, p.moved, orDash(found[p.sum]))
			}
		}
		s.fail("poison", "%d error records name another source offset than the broker acknowledged for their message (found by content)", moved)
	}
	t.Logf("poison outcomes:\n%s", strings.Join(lines, "\n"))

	// No process exited unless killed.
	s.mu.Lock()
	s.finishing = true
	exits := append([]exitInfo(nil), s.exits...)
	s.mu.Unlock()
	// One failure per process and cause, with the count.
	type cause struct{ proc, last string }
	var causes []cause
	count := map[cause]int{}
	for _, e := range exits {
		last := e.err
		for i := len(e.tail) - 1; i >= 0; i-- {
			if strings.Contains(e.tail[i], `"level":"ERROR"`) || !strings.HasPrefix(e.tail[i], "{") {
				last = e.tail[i]
				break
			}
		}
		c := cause{e.proc, last}
		if count[c] == 0 {
			causes = append(causes, c)
		}
		count[c]++
	}
	for _, c := range causes {
		s.fail("exits", "%s exited unasked %d times: %s", c.proc, count[c], c.last)
	}

	s.checkReadiness()
}

// claimxClasses are the error classes a good event may get from a ClaimX
// failure that outlasted the retry budget.
var claimxClasses = map[string]bool{"api_unavailable": true, "lookup_failed": true, "lookup": true}

// classifyMissing splits the expected events missing from the table into
// those in an error topic, those a worker moved past without a trace (lost:
// the enrichment group committed past the event and it reached neither the
// tracking topic nor an error topic, or the table's txn version for its
// tracking partition is past it) and those no worker got to (blocked).
func (s *suite) classifyMissing(ctx context.Context, missing []string, produced map[string]*kgo.Record, ix errorIndex) (lost, blocked []string, inErrors int) {
	committed := map[int32]int64{}
	if offs, err := s.adm.FetchOffsets(ctx, groupEnrich); err == nil {
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topicEvents {
				committed[o.Partition] = o.At
			}
		})
	}
	tracking := map[string]*kgo.Record{}
	for _, r := range s.readTopic(ctx, topicTracking) {
		var ev struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(r.Value, &ev) == nil && tracking[ev.EventID] == nil {
			tracking[ev.EventID] = r
		}
	}
	txns := map[string]int64{}
	if store, err := delta.NewLocalStorage(s.data + "/delta/" + tableName); err == nil {
		if tb, err := delta.Open(ctx, store); err == nil {
			if snap, err := tb.Snapshot(ctx); err == nil {
				txns = snap.Txns()
			}
			tb.Close(ctx)
		}
	}
	for _, id := range missing {
		if len(ix.byEvent[id]) > 0 {
			inErrors++
			continue
		}
		past := false
		if tr := tracking[id]; tr != nil {
			v, ok := txns[fmt.Sprintf("%s-%s-%d", workerName, topicTracking, tr.Partition)]
			past = ok && v >= tr.Offset
		} else if ev := produced[id]; ev != nil {
			past = committed[ev.Partition] > ev.Offset
		}
		if past {
			lost = append(lost, id)
		} else {
			blocked = append(blocked, id)
		}
	}
	return lost, blocked, inErrors
}

// account finds what became of a poison message.
// An error record is found by the message's content first (the SHA-256 of
// its value), then by the offset the producer was told: both must be
// true of one record, and moved says when the record names another
// offset than the one the broker acknowledged.
func (s *suite) account(p *poison, rows map[string]int, ix errorIndex) bool {
	at := fmt.Sprintf("%s/%d/%d", p.topic, p.partition, p.offset)
	p.moved = ""
	for _, rec := range ix.bySum[p.sum] {
		if rec.Topic != p.topic {
			continue
		}
		p.outcome, p.class, p.cut = "error", rec.Class, rec.OriginalTruncated
		if k := string(rec.RecordKey()); k != at {
			p.moved = k
		}
		return true
	}
	if recs := ix.bySource[at]; len(recs) > 0 {
		p.outcome, p.class, p.cut = "error", recs[0].Class, recs[0].OriginalTruncated
		return true
	}
	if p.eventID != "" {
		if rows[p.eventID] > 0 {
			p.outcome = "row"
			return true
		}
		if alt := strings.ToValidUTF8(p.eventID, "\uFFFD"); alt != p.eventID && rows[alt] > 0 {
			p.outcome = "row_altered"
			return true
		}
	}
	if p.topic == topicEvents && p.eventID != "" {
		// A task event that enrich handled is a row only through the
		// tracking topic: that is fine too (the table check sees it).
		if recs := ix.byEvent[p.eventID]; len(recs) > 0 {
			p.outcome, p.class, p.cut = "error", recs[0].Class, recs[0].OriginalTruncated
			return true
		}
	}
	p.outcome, p.class, p.cut = "", "", false
	return false
}

func orDash(s string) string {
	if s == "" {
		return "UNACCOUNTED"
	}
	return s
}

// checkReadiness compares every /readyz sample with what the state at its
// time calls for.
func (s *suite) checkReadiness() {
	s.mu.Lock()
	samples := append([]sample(nil), s.samples...)
	expects := append([]expectation(nil), s.expects...)
	s.mu.Unlock()
	end := time.Now()
	for _, e := range expects {
		to := e.to
		if to.IsZero() {
			to = end
		}
		var in []sample
		for _, x := range samples {
			if x.proc == e.proc && !x.at.Before(e.from) && !x.at.After(to) {
				in = append(in, x)
			}
		}
		if len(in) == 0 {
			continue
		}
		good := func(x sample) bool { return x.code == http.StatusOK }
		if e.want == "not_ready" {
			good = func(x sample) bool { return x.code != http.StatusOK }
		}
		first := -1
		for i, x := range in {
			if good(x) {
				first = i
				break
			}
		}
		s.fig.samples += len(in)
		switch {
		case first < 0:
			s.fig.mismatches += len(in)
			s.fail("readiness", "%s during %q (%s): want %s, never seen in %d samples (e.g. %d %q)", e.proc, e.why, to.Sub(e.from).Round(time.Second), e.want, len(in), in[len(in)-1].code, in[len(in)-1].body)
			continue
		case first > 0 && in[first].at.Sub(e.from) > e.grace:
			s.fig.mismatches += first
			s.fail("readiness", "%s during %q: %s only after %s (grace %s); before: %d %q", e.proc, e.why, e.want, in[first].at.Sub(e.from).Round(time.Millisecond), e.grace, in[0].code, in[0].body)
		}
		var bad []sample
		for _, x := range in[first:] {
			if !good(x) {
				bad = append(bad, x)
			}
		}
		if len(bad) > 0 {
			s.fig.mismatches += len(bad)
			s.fail("readiness", "%s during %q: %d of %d samples were not %s, first at +%s: %d %q", e.proc, e.why, len(bad), len(in)-first, e.want, bad[0].at.Sub(e.from).Round(time.Millisecond), bad[0].code, bad[0].body)
		}
	}
}

// report logs the summary line and turns the failed checks into test
// failures (or, for pending features, a skip).
func (s *suite) report(trials int, took time.Duration) {
	t := s.t
	f := s.fig
	kills := 0
	for _, n := range s.kills {
		kills += n
	}
	med, worst := restartStats(s.restarts)
	var rl []string
	for _, r := range s.restarts {
		rl = append(rl, fmt.Sprintf("%s %s", r.proc, r.consume.Round(time.Millisecond)))
	}
	t.Logf("restart to consuming again: %s", strings.Join(rl, ", "))
	t.Logf("error records: %d (%s), %d with the original cut", f.errors.total, joinCounts(f.errors.classes), f.errors.cut)
	t.Logf("chaos summary: seed %d, trials %d, kills %d (%s), bad inputs %d (%s), accounted %d (rows %d, error records %d), stream %d events, expected rows %d, in table %d, lost %d, blocked %d, duplicated %d, unexpected %d, via error topic %d (replayed %d), unexpected exits %d, readiness samples %d mismatched %d, restart-to-consume median %s worst %s over %d restarts, took %s",
		s.seed, trials, kills, joinCounts(s.kills), len(s.poisons), joinCounts(f.poisonByKind), f.poisonOK, f.poisonRows, f.poisonErrs,
		f.produced, f.expected, f.inTable, f.lost, f.blocked, f.duplicated, f.unexpected, f.viaErrors, f.replayed, len(s.exits), f.samples, f.mismatches,
		med.Round(time.Millisecond), worst.Round(time.Millisecond), len(s.restarts), took.Round(time.Second))
	for _, n := range s.notes {
		t.Logf("note: %s", n)
	}
	strict := os.Getenv("KPIPE_CHAOS_STRICT") == "1"
	var pending []string
	checks := make([]string, 0, len(s.failures))
	for c := range s.failures {
		checks = append(checks, c)
	}
	sort.Strings(checks)
	for _, c := range checks {
		msgs := s.failures[c]
		feature, isPending := pendingFeatures[c]
		for _, m := range msgs {
			if isPending && !strict {
				t.Logf("PENDING %s: %s", c, m)
			} else {
				t.Errorf("%s: %s", c, m)
			}
		}
		if isPending && !strict {
			pending = append(pending, fmt.Sprintf("%s (%d failures)", feature, len(msgs)))
		}
	}
	if len(pending) > 0 && !t.Failed() {
		t.Skipf("the core checks passed; checks of features not built yet failed (KPIPE_CHAOS_STRICT=1 makes them fail): %s", strings.Join(pending, "; "))
	}
}
