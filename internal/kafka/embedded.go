package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"

	"kpipe/internal/config"
)

// DefaultHost is the address the embedded broker listens on by default.
const DefaultHost = "127.0.0.1"

// DefaultPort is the port the embedded broker listens on by default, Kafka's
// usual one.
const DefaultPort = 9092

// DirMode is the mode of the folders kpipe creates for the broker's data:
// owner and group only.
const DirMode = 0o750

// EmbeddedOptions configure StartEmbedded.
type EmbeddedOptions struct {
	// Host is the address to listen on. Default 127.0.0.1.
	Host string
	// Port is the port to listen on; 0 picks any free port. A fixed port
	// lets outside tools (kcat) connect; see PortFree.
	Port int
	// DataDir, when set, persists topics, records, group offsets and
	// transaction state there, so a restarted broker carries on where it
	// stopped. Empty keeps everything in memory.
	DataDir string
	// DirMode is the permission of DataDir when it is created (default
	// DirMode).
	DirMode os.FileMode
	// SyncWrites fsyncs every produced batch, so acknowledged records
	// survive an operating-system crash, not only a killed process. Slower.
	SyncWrites bool
	// SegmentBytes is the size at which a partition's log file is rolled
	// (0: kfake's default, 100 MiB). Records deleted or expired free their
	// disk only with the whole file they are in: kpipe up, which deletes
	// what its workers have committed, rolls small files.
	SegmentBytes int64
	// Users, when set, make the broker require SASL: each is a superuser
	// (no ACLs apply) with its mechanism, PLAIN, SCRAM-SHA-256 or
	// SCRAM-SHA-512.
	Users []SASLUser
	// TLS, when set, makes the listener speak TLS with this configuration
	// (its Certificates).
	TLS *tls.Config
	// Logger receives the broker's warnings and errors. Nil discards them.
	Logger *slog.Logger
	// Extra are further kfake options (tests use them to shorten group
	// session timeouts, seed topics or inject faults).
	Extra []kfake.Opt
}

// SASLUser is a user of the embedded broker.
type SASLUser struct {
	Mechanism string
	User      string
	Password  config.Secret
}

// Embedded is a single-broker Kafka cluster running in this process
// (franz-go's kfake): the real Kafka protocol, with consumer groups and
// transactions, on a local port. It is safe for concurrent use.
type Embedded struct {
	c *kfake.Cluster
}

// StartEmbedded starts the embedded broker. ctx bounds only the start; stop
// the broker with Close.
func StartEmbedded(ctx context.Context, o EmbeddedOptions) (*Embedded, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	host := o.Host
	if host == "" {
		host = DefaultHost
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("kpipe-embedded"),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			// kfake always asks for 127.0.0.1:<port>; keep the port, use our host.
			_, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, port))
		}),
	}
	if o.Port != 0 {
		opts = append(opts, kfake.Ports(o.Port))
	}
	if o.DataDir != "" {
		// kfake would create it 0755; the folder holds every record.
		mode := o.DirMode
		if mode == 0 {
			mode = DirMode
		}
		if err := os.MkdirAll(o.DataDir, mode); err != nil {
			return nil, fmt.Errorf("embedded Kafka broker data folder: %w", err)
		}
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	if o.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	if o.SegmentBytes > 0 {
		opts = append(opts, kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.FormatInt(o.SegmentBytes, 10)}))
	}
	if len(o.Users) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range o.Users {
			switch u.Mechanism {
			case SASLPlain, SASLScramSHA256, SASLScramSHA512:
			default:
				return nil, fmt.Errorf("embedded Kafka broker: SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", u.Mechanism)
			}
			opts = append(opts, kfake.Superuser(u.Mechanism, u.User, u.Password.Reveal()))
		}
	}
	if o.TLS != nil {
		opts = append(opts, kfake.TLS(o.TLS))
	}
	if o.Logger != nil {
		opts = append(opts, kfake.WithLogger(kfakeLogger{o.Logger}))
	}
	opts = append(opts, o.Extra...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting embedded Kafka broker: %w", err)
	}
	return &Embedded{c: c}, nil
}

// Addrs returns the host:port the broker listens on, for
// Config.Brokers or KAFKA_BOOTSTRAP_SERVERS.
func (e *Embedded) Addrs() []string { return e.c.ListenAddrs() }

// Cluster returns the underlying kfake cluster, for fault injection in tests.
func (e *Embedded) Cluster() *kfake.Cluster { return e.c }

// ApplyRetention drops now the records past the topics' retention.ms and
// retention.bytes, which the broker otherwise enforces hourly
// (log.cleaner.backoff.ms).
func (e *Embedded) ApplyRetention() { e.c.ApplyRetention() }

// Close stops the broker; with a DataDir its state is flushed to disk first.
func (e *Embedded) Close() { e.c.Close() }

// PortFree reports whether host:port can be listened on now. "kpipe up" uses
// it to take 9092 when free and the next free port otherwise.
func PortFree(host string, port int) bool {
	if host == "" {
		host = DefaultHost
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// ErrNoFreePort is returned by FreePort when no port in the range is free.
var ErrNoFreePort = errors.New("no free port")

// FreePort returns the first port from start up to start+tries-1 that
// PortFree accepts.
func FreePort(host string, start, tries int) (int, error) {
	for p := start; p < start+tries && p < 65536; p++ {
		if PortFree(host, p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("ports %d-%d on %s: %w", start, start+tries-1, host, ErrNoFreePort)
}

// kfakeLogger forwards kfake's warnings and errors to slog; its info and
// debug lines (one per request) are dropped.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lv slog.Level
	switch level {
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	default:
		return
	}
	if !k.l.Enabled(context.Background(), lv) {
		return
	}
	k.l.Log(context.Background(), lv, "kfake", "detail", fmt.Sprintf(format, args...))
}
