package s3test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is what a Proxy does to one request.
type Fault int

const (
	// FaultNone forwards the request and its response.
	FaultNone Fault = iota
	// Fault500 answers 500 InternalError without forwarding: not applied.
	Fault500
	// Fault503 answers 503 SlowDown without forwarding: not applied.
	Fault503
	// Fault500After forwards the request (the server applies it), then
	// answers 500 InternalError instead of the server's response.
	Fault500After
	// FaultResetBefore resets the connection without forwarding the
	// request: not applied, no response.
	FaultResetBefore
	// FaultResetAfter forwards the request (the server applies it) and
	// resets the connection instead of sending the response.
	FaultResetAfter
	// FaultSlow waits Proxy.SlowBy (or until the client gives up) before
	// forwarding.
	FaultSlow
	// FaultCloseBefore closes the connection (FIN, no reset) without
	// forwarding: the client reads EOF where a response should be.
	FaultCloseBefore
	// FaultTruncate forwards the request and sends the response's status,
	// headers and half its body, then closes the connection: the client
	// reads an unexpected EOF.
	FaultTruncate
	numFaults
)

var faultNames = [numFaults]string{"none", "500", "503", "500-after", "reset-before", "reset-after", "slow", "close-before", "truncate"}

func (f Fault) String() string {
	if f >= 0 && f < numFaults {
		return faultNames[f]
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// Rule chooses the fault of a request. It is called concurrently.
type Rule func(r *http.Request) Fault

// Always is the rule that gives every request f.
func Always(f Fault) Rule { return func(*http.Request) Fault { return f } }

// Rates is the rule that gives each request a fault at random, with the
// probabilities given (their sum at most 1), from a generator seeded with
// seed.
func Rates(seed uint64, rates map[Fault]float64) Rule {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func(*http.Request) Fault {
		mu.Lock()
		x := rng.Float64()
		mu.Unlock()
		for f := Fault(1); f < numFaults; f++ {
			if x < rates[f] {
				return f
			}
			x -= rates[f]
		}
		return FaultNone
	}
}

// IsConditionalPut reports whether r is a PutObject with If-None-Match: a
// Delta commit or checkpoint.
func IsConditionalPut(r *http.Request) bool {
	return r.Method == http.MethodPut && r.Header.Get("If-None-Match") != ""
}

// Proxy is an HTTP reverse proxy in front of a Server that injects faults:
// 5xx answers, connection resets before and after forwarding, slow
// responses, chosen per request by its Rule. It keeps the Host header, so
// that the clients' SigV4 signatures stay valid. Its endpoint serves the
// same bucket with the same credentials as the Server.
type Proxy struct {
	// Endpoint is the proxy's URL, http://127.0.0.1:PORT.
	Endpoint string
	// SlowBy is how long FaultSlow waits (default 2 s); set it before
	// requests are made.
	SlowBy time.Duration

	srv      *Server
	upstream *url.URL
	tr       *http.Transport
	rule     atomic.Pointer[Rule]
	requests atomic.Int64
	injected [numFaults]atomic.Int64
}

// StartProxy starts a fault proxy in front of s, forwarding everything
// until SetRule says otherwise, and stops it when the test ends.
func (s *Server) StartProxy(t testing.TB) *Proxy {
	t.Helper()
	up, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{SlowBy: 2 * time.Second, srv: s, upstream: up, tr: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Endpoint = "http://" + ln.Addr().String()
	hs := &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	done := make(chan struct{})
	go func() { _ = hs.Serve(ln); close(done) }()
	t.Cleanup(func() {
		_ = hs.Close()
		<-done
		p.tr.CloseIdleConnections()
	})
	return p
}

// SetRule makes rule choose the faults of the requests from now on; nil
// forwards everything.
func (p *Proxy) SetRule(rule Rule) {
	if rule == nil {
		p.rule.Store(nil)
		return
	}
	p.rule.Store(&rule)
}

// Heal forwards everything from now on.
func (p *Proxy) Heal() { p.SetRule(nil) }

// Requests is the number of requests the proxy has received.
func (p *Proxy) Requests() int64 { return p.requests.Load() }

// Injected is the number of requests given fault f.
func (p *Proxy) Injected(f Fault) int64 { return p.injected[f].Load() }

// URL returns the s3:// table location of prefix in the server's bucket
// through the proxy, as Server.URL does.
func (p *Proxy) URL(prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&path_style=true&region=%s", p.srv.Bucket, strings.Trim(prefix, "/"), p.Endpoint, p.srv.Region)
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	f := FaultNone
	if rule := p.rule.Load(); rule != nil {
		f = (*rule)(r)
	}
	p.injected[f].Add(1)
	switch f {
	case Fault500, Fault503:
		_, _ = io.Copy(io.Discard, r.Body)
		writeS3Error(w, f)
		return
	case FaultResetBefore:
		reset(w, true)
		return
	case FaultCloseBefore:
		reset(w, false)
		return
	case FaultSlow:
		select {
		case <-time.After(p.SlowBy):
		case <-r.Context().Done():
			return
		}
	}
	resp, err := p.forward(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	switch f {
	case Fault500After:
		_, _ = io.Copy(io.Discard, resp.Body)
		writeS3Error(w, Fault500)
		return
	case FaultResetAfter:
		_, _ = io.Copy(io.Discard, resp.Body)
		reset(w, true)
		return
	}
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	if f == FaultTruncate && resp.ContentLength > 1 {
		w.WriteHeader(resp.StatusCode)
		_, _ = io.CopyN(w, resp.Body, resp.ContentLength/2)
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		reset(w, false)
		return
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// forward sends r to the server, with its Host header (signed by SigV4).
func (p *Proxy) forward(r *http.Request) (*http.Response, error) {
	out := r.Clone(context.WithoutCancel(r.Context()))
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.upstream.Scheme, p.upstream.Host
	out.Host = r.Host
	if r.ContentLength == 0 {
		out.Body = nil
	}
	return p.tr.RoundTrip(out)
}

// writeS3Error answers as S3 does when it fails: 500 InternalError or 503
// SlowDown.
func writeS3Error(w http.ResponseWriter, f Fault) {
	code, name := http.StatusInternalServerError, "InternalError"
	if f == Fault503 {
		code, name = http.StatusServiceUnavailable, "SlowDown"
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(code)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by s3test.Proxy</Message></Error>`, name)
}

// reset closes the client's connection, with a TCP reset when rst, sending
// nothing more.
func reset(w http.ResponseWriter, rst bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(errors.New("s3test: the proxy's connection cannot be hijacked"))
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
