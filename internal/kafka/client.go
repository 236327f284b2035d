// Package kafka builds kpipe's franz-go clients from configuration and the
// environment, runs an embedded broker for single-machine use and tests, and
// creates the topics kpipe needs.
//
// Clients are configured from these environment variables (ConfigFromEnv):
//
//	KAFKA_BOOTSTRAP_SERVERS          comma-separated host:port seed brokers; required
//	                                 to connect (kpipe up starts an embedded broker instead)
//	KAFKA_CLIENT_ID                  client id sent to the brokers; default "kpipe"
//	KAFKA_TLS_ENABLED                true to use TLS; implied by any KAFKA_TLS_*_FILE
//	KAFKA_TLS_CA_FILE                PEM CA bundle that signs the brokers' certificates;
//	                                 default: the system roots
//	KAFKA_TLS_CERT_FILE              PEM client certificate (mutual TLS), with KAFKA_TLS_KEY_FILE
//	KAFKA_TLS_KEY_FILE               PEM private key of the client certificate
//	KAFKA_TLS_INSECURE_SKIP_VERIFY   true to skip verifying the brokers' certificates
//	KAFKA_SASL_MECHANISM             PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL
//	KAFKA_SASL_USERNAME              SASL user; required with a mechanism
//	KAFKA_SASL_PASSWORD              SASL password; required with a mechanism; never logged
//
// A typical start:
//
//	cfg, err := kafka.ConfigFromEnv(os.LookupEnv)
//	if err != nil {
//		return err // every problem, joined
//	}
//	cl, err := kafka.NewClient(cfg, logger, kgo.ConsumeTopics("claimx.events"))
//	if err != nil {
//		return err
//	}
//	defer cl.Close()
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kslog"

	"kpipe/internal/config"
)

// SASL mechanisms Config.SASL.Mechanism accepts.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// DefaultClientID is the client id used when none is configured.
const DefaultClientID = "kpipe"

// ErrNoBrokers means no seed broker is configured: set
// KAFKA_BOOTSTRAP_SERVERS, or run "kpipe up", which starts an embedded broker.
var ErrNoBrokers = errors.New("no Kafka brokers configured: set KAFKA_BOOTSTRAP_SERVERS (host:port,...) or use \"kpipe up\" for an embedded broker")

// Config is how kpipe connects to Kafka.
type Config struct {
	// Brokers are the seed brokers, host:port. Required to connect.
	Brokers []string
	// ClientID is sent to the brokers. Default "kpipe".
	ClientID string
	// TLS encrypts connections when Enabled.
	TLS TLSConfig
	// SASL authenticates connections when Mechanism is set.
	SASL SASLConfig
}

// TLSConfig configures TLS to the brokers.
type TLSConfig struct {
	// Enabled turns TLS on.
	Enabled bool
	// CAFile is a PEM bundle of the CAs that sign the brokers' certificates.
	// Empty: the system roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key for mutual
	// TLS; both or neither.
	CertFile string
	KeyFile  string
	// InsecureSkipVerify skips verifying the brokers' certificates. For test
	// clusters only.
	InsecureSkipVerify bool
}

// SASLConfig configures SASL authentication.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism string
	// Username and Password are the credentials; both required with a
	// mechanism.
	Username string
	Password config.Secret
}

// ConfigFromEnv reads a Config from the KAFKA_* environment variables listed
// in the package documentation. getenv is os.LookupEnv outside tests. A
// missing KAFKA_BOOTSTRAP_SERVERS is not an error here (Brokers stays empty,
// so a caller can start an embedded broker); NewClient refuses it with
// ErrNoBrokers. The error joins every problem found.
func ConfigFromEnv(getenv func(string) (string, bool)) (Config, error) {
	get := func(k string) string {
		v, _ := getenv(k)
		return strings.TrimSpace(v)
	}
	var errs []error
	boolean := func(k string) bool {
		v := get(k)
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", k, v))
		}
		return b
	}
	cfg := Config{
		ClientID: get("KAFKA_CLIENT_ID"),
		TLS: TLSConfig{
			Enabled:            boolean("KAFKA_TLS_ENABLED"),
			CAFile:             get("KAFKA_TLS_CA_FILE"),
			CertFile:           get("KAFKA_TLS_CERT_FILE"),
			KeyFile:            get("KAFKA_TLS_KEY_FILE"),
			InsecureSkipVerify: boolean("KAFKA_TLS_INSECURE_SKIP_VERIFY"),
		},
		SASL: SASLConfig{
			Mechanism: strings.ToUpper(get("KAFKA_SASL_MECHANISM")),
			Username:  get("KAFKA_SASL_USERNAME"),
		},
	}
	if pw, ok := getenv("KAFKA_SASL_PASSWORD"); ok {
		cfg.SASL.Password = config.Secret(pw)
	}
	for b := range strings.SplitSeq(get("KAFKA_BOOTSTRAP_SERVERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.Brokers = append(cfg.Brokers, b)
		}
	}
	if cfg.TLS.CAFile != "" || cfg.TLS.CertFile != "" || cfg.TLS.KeyFile != "" {
		cfg.TLS.Enabled = true
	}
	if err := cfg.check(false); err != nil {
		errs = append(errs, err)
	}
	return cfg, errors.Join(errs...)
}

// Validate reports every problem of the configuration, joined; ErrNoBrokers
// among them when Brokers is empty.
func (c Config) Validate() error { return c.check(true) }

func (c Config) check(needBrokers bool) error {
	var errs []error
	if needBrokers && len(c.Brokers) == 0 {
		errs = append(errs, ErrNoBrokers)
	}
	for _, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("broker %q: want host:port", b))
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("TLS: the client certificate and key files go together: set both KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE, or neither"))
	}
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.Username != "" || c.SASL.Password != "" {
			errs = append(errs, errors.New("SASL: a username or password is set but no mechanism: set KAFKA_SASL_MECHANISM to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASL.Username == "" {
			errs = append(errs, fmt.Errorf("SASL %s: KAFKA_SASL_USERNAME is required", c.SASL.Mechanism))
		}
		if c.SASL.Password == "" {
			errs = append(errs, fmt.Errorf("SASL %s: KAFKA_SASL_PASSWORD is required", c.SASL.Mechanism))
		}
	default:
		errs = append(errs, fmt.Errorf("SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism))
	}
	return errors.Join(errs...)
}

// LogValue implements slog.LogValuer; the password never appears.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("brokers", strings.Join(c.Brokers, ",")),
		slog.String("client_id", c.clientID()),
		slog.Bool("tls", c.TLS.Enabled),
		slog.String("sasl", c.SASL.Mechanism),
	)
}

func (c Config) clientID() string {
	if c.ClientID == "" {
		return DefaultClientID
	}
	return c.ClientID
}

// Opts returns the kgo options for cfg: seeds, client id, TLS dialer, SASL
// and kgo logs through logger (kslog). A nil logger discards kgo's logs.
func (c Config) Opts(logger *slog.Logger) ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.clientID()),
		kgo.WithLogger(kslog.New(logger.With("component", "kgo"))),
	}
	if c.TLS.Enabled {
		tc, err := c.TLS.build()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch user, pass := c.SASL.Username, c.SASL.Password.Reveal(); c.SASL.Mechanism {
	case SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	case SASLScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	case SASLScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	}
	return opts, nil
}

func (t TLSConfig) build() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in for test clusters
	var errs []error
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading TLS CA file: %w", err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("TLS CA file %s: no PEM certificate found", t.CAFile))
			}
			tc.RootCAs = pool
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("loading TLS client certificate: %w", err))
		} else {
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tc, nil
}

// NewClient builds a franz-go client from cfg plus opts (consumer group,
// transactional id, ...). kgo logs go to logger through kslog.
func NewClient(cfg Config, logger *slog.Logger, opts ...kgo.Opt) (*kgo.Client, error) {
	base, err := cfg.Opts(logger)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka client: %w", err)
	}
	return cl, nil
}

// Ping checks that a broker answers within ctx, for a clear error at start-up
// instead of silent retries.
func Ping(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("reaching Kafka brokers: %w", err)
	}
	return nil
}
