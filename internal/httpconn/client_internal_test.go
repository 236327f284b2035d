package httpconn

import (
	"testing"
	"time"
)

func TestBackoffAndRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"3": 3 * time.Second, "0": 0, "1.5": 1500 * time.Millisecond,
		now.Add(20 * time.Second).Format("Mon, 02 Jan 2006 15:04:05 GMT"): 20 * time.Second,
		now.Add(-time.Hour).Format("Mon, 02 Jan 2006 15:04:05 GMT"):       0,
	} {
		if got, ok := parseRetryAfter(in, now); !ok || got != want {
			t.Errorf("%q: got %v %v, want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "-1", "soon", "NaN"} {
		if _, ok := parseRetryAfter(bad, now); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	c := &Client{backoffBase: 2, backoffMax: 10 * time.Second}
	for n, want := range []float64{2, 4, 8, 10, 10, 10} {
		d := c.backoff(n + 1)
		if lo, hi := time.Duration(want*0.8e9), time.Duration(min(want*1.2, 10)*1e9); d < lo || d > hi {
			t.Errorf("backoff(%d) = %s, want in [%s, %s]", n+1, d, lo, hi)
		}
	}
	if d := c.backoff(5000); d != 10*time.Second {
		t.Errorf("huge attempt: %s", d)
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Connection: "claimx_api", Method: "GET", URL: "/x", Status: 503, Retryable: true, Attempts: 4, Body: `{"error":1}`}
	if got := e.Error(); got != `claimx_api: GET /x: status 503 Service Unavailable (4 attempts): {"error":1}` {
		t.Fatalf("got %q", got)
	}
}
