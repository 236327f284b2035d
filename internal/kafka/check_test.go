package kafka

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestCheckSASL checks every mechanism against a broker requiring it: the
// right password passes, a wrong one (or none) is ErrAuth naming the broker
// and the mechanism, and is fatal.
func TestCheckSASL(t *testing.T) {
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "alice", "s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			broker := c.ListenAddrs()[0]
			cfg := Config{Brokers: []string{broker}, SASL: SASLConfig{Mechanism: mech, Username: "alice", Password: "s3cret"}}
			if err := Check(t.Context(), cfg); err != nil {
				t.Fatalf("right password: %v", err)
			}
			cfg.SASL.Password = "wrong"
			err = Check(t.Context(), cfg)
			var ce *CheckError
			if !errors.Is(err, ErrAuth) || !errors.As(err, &ce) || !IsFatal(err) {
				t.Fatalf("wrong password: got %v, want a fatal ErrAuth", err)
			}
			for _, want := range []string{broker, mech, `"alice"`, "KAFKA_SASL_PASSWORD"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Errorf("error %q shows the password", err)
			}
			err = Check(t.Context(), Config{Brokers: []string{broker}})
			if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "KAFKA_SASL_MECHANISM") {
				t.Fatalf("no SASL against a SASL broker: got %v, want ErrAuth asking for SASL", err)
			}
		})
	}
}

func TestCheckUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	err = Check(t.Context(), Config{Brokers: []string{addr}})
	if !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrAuth) || IsFatal(err) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("got %v, want a non-fatal ErrUnreachable naming %s", err, addr)
	}
	if err := Check(t.Context(), Config{}); !errors.Is(err, ErrNoBrokers) {
		t.Fatalf("no brokers: got %v, want ErrNoBrokers", err)
	}
}

func TestCheckPlain(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The first seed is down: Check goes on to the next.
	if err := Check(t.Context(), Config{Brokers: []string{"127.0.0.1:1", c.ListenAddrs()[0]}}); err != nil {
		t.Fatal(err)
	}
}
