package kafka

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kinds of connection failure Check reports; test with errors.Is. The
// *CheckError carrying them names the broker, and for ErrAuth the mechanism
// and user.
var (
	// ErrUnreachable means no seed broker could be reached: refused, timed
	// out, unknown host, or the connection broke with no SASL involved.
	ErrUnreachable = errors.New("kafka brokers unreachable")
	// ErrAuth means a broker refused authentication: wrong SASL user or
	// password, a mechanism it does not enable, or SASL it requires but was
	// not configured. Retrying does not help: fatal.
	ErrAuth = errors.New("kafka authentication failed")
	// ErrTLS means the TLS handshake with a broker failed: its certificate is
	// not signed by a trusted CA (KAFKA_TLS_CA_FILE), names another host, or
	// the broker does not speak TLS. Fatal.
	ErrTLS = errors.New("kafka tls handshake failed")
)

// CheckError is a failure to connect to and authenticate with a cluster.
// errors.Is(err, Kind) holds, and Unwrap gives the cause.
type CheckError struct {
	// Kind is ErrUnreachable, ErrAuth or ErrTLS.
	Kind error
	// Broker is the host:port that failed; with ErrUnreachable, every seed
	// broker, comma-separated.
	Broker string
	// Mechanism and User are the SASL settings tried, with ErrAuth; an
	// empty Mechanism there means the broker wants SASL and none is set.
	Mechanism string
	User      string
	// Err is the cause.
	Err error
}

func (e *CheckError) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	switch {
	case errors.Is(e.Kind, ErrAuth) && e.Mechanism == "":
		fmt.Fprintf(&b, ": broker %s closed the connection before answering, as brokers that require SASL do: set KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD", e.Broker)
	case errors.Is(e.Kind, ErrAuth):
		fmt.Fprintf(&b, ": broker %s refused SASL %s for user %q: check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM", e.Broker, e.Mechanism, e.User)
	case errors.Is(e.Kind, ErrTLS):
		fmt.Fprintf(&b, ": broker %s: check KAFKA_TLS_CA_FILE (the CA that signs the brokers' certificates) and that the broker listens with TLS", e.Broker)
	default:
		fmt.Fprintf(&b, ": %s", e.Broker)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *CheckError) Unwrap() error { return e.Err }

// Is reports whether target is e's Kind.
func (e *CheckError) Is(target error) bool { return target == e.Kind }

// IsFatal reports whether err means the connection settings are wrong, so
// that retrying cannot help and the process should stop: ErrAuth, ErrTLS,
// or the broker's authentication and authorization error codes.
func IsFatal(err error) bool {
	return errors.Is(err, ErrAuth) || errors.Is(err, ErrTLS) ||
		errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) || errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

// checkTimeout bounds one Check when ctx has no deadline.
const checkTimeout = 15 * time.Second

// Check dials the seed brokers of cfg, completes TLS when enabled and SASL
// when configured, and asks one broker for metadata. It returns nil when a
// client built from cfg can work, a *CheckError of kind ErrUnreachable,
// ErrTLS or ErrAuth otherwise, or cfg's validation error. Commands call it
// before anything else for a clear first error; workers call it for
// readiness. It does not retry: a caller that wants to wait retries
// ErrUnreachable itself. Without a deadline in ctx it gives up after 15 s.
func Check(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, checkTimeout)
		defer cancel()
	}
	var tc *tls.Config
	if cfg.TLS.Enabled {
		var err error
		if tc, err = cfg.TLS.build(); err != nil {
			return err
		}
	}
	// Dial first: it tells an unreachable broker and a TLS failure apart
	// from what happens later in the Kafka protocol.
	var dialErrs []error
	broker := ""
	for _, b := range cfg.Brokers {
		err := dial(ctx, b, tc)
		if err == nil {
			broker = b
			break
		}
		if errors.Is(err, ErrTLS) {
			return err
		}
		dialErrs = append(dialErrs, err)
	}
	if broker == "" {
		return &CheckError{Kind: ErrUnreachable, Broker: strings.Join(cfg.Brokers, ","), Err: errors.Join(dialErrs...)}
	}

	cfg.Brokers = []string{broker}
	err := request(ctx, cfg)
	if err == nil || !closedByPeer(err) || ctx.Err() != nil {
		return classify(cfg, broker, err)
	}
	// The broker took the connection and dropped it. A broker going down
	// does that too: when it cannot be dialled again, it is unreachable.
	if derr := dial(ctx, broker, tc); derr != nil {
		return &CheckError{Kind: ErrUnreachable, Broker: broker, Err: errors.Join(err, derr)}
	}
	if !cfg.TLS.Enabled && !answersPlaintext(ctx, broker) {
		return &CheckError{Kind: ErrTLS, Broker: broker, Err: errors.New("the broker does not answer Kafka requests in plaintext, it probably wants TLS: set KAFKA_TLS_ENABLED=true")}
	}
	return classify(cfg, broker, request(ctx, cfg))
}

// request asks the one broker of cfg for metadata, without retries.
func request(ctx context.Context, cfg Config) error {
	opts, err := cfg.Opts(slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0))...)
	if err != nil {
		return fmt.Errorf("creating Kafka client: %w", err)
	}
	defer cl.Close()
	// A metadata request for no topic: every broker answers it, and it
	// needs the connection's SASL to have succeeded.
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	_, err = req.RequestWith(ctx, cl)
	return err
}

// answersPlaintext reports whether broker answers a Kafka ApiVersions request
// sent without TLS. A plaintext client talking to a TLS listener gets its
// connection closed, which would look like a SASL refusal otherwise.
func answersPlaintext(ctx context.Context, broker string) bool {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", broker)
	if err != nil {
		return false
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	if _, err := conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID(DefaultClientID)).AppendRequest(nil, req, 1)); err != nil {
		return false
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return false
	}
	// A Kafka response is small; a TLS alert read as a size is hundreds of
	// megabytes.
	n := binary.BigEndian.Uint32(size[:])
	return n > 0 && n < 1<<20
}

// dial opens and closes one connection to broker, with a TLS handshake when
// tc is set.
func dial(ctx context.Context, broker string, tc *tls.Config) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", broker)
	if err != nil {
		return err
	}
	defer conn.Close()
	if tc == nil {
		return nil
	}
	tc = tc.Clone()
	if tc.ServerName == "" {
		if host, _, err := net.SplitHostPort(broker); err == nil {
			tc.ServerName = host
		}
	}
	// A plaintext listener may wait for more bytes instead of answering
	// the ClientHello: bound the handshake.
	hctx, cancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
	defer cancel()
	tconn := tls.Client(conn, tc)
	if err := tconn.HandshakeContext(hctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		if hctx.Err() != nil {
			err = fmt.Errorf("no TLS answer within %s, is the listener plaintext? %w", tlsHandshakeTimeout, err)
		}
		return &CheckError{Kind: ErrTLS, Broker: broker, Err: err}
	}
	return nil
}

// tlsHandshakeTimeout bounds Check's TLS handshake with one broker.
const tlsHandshakeTimeout = 10 * time.Second

// classify turns the error of a request to a broker that accepted the
// connection into a *CheckError.
func classify(cfg Config, broker string, err error) error {
	authErr := func() error {
		return &CheckError{Kind: ErrAuth, Broker: broker, Mechanism: cfg.SASL.Mechanism, User: cfg.SASL.Username, Err: err}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState),
		errors.Is(err, kerr.UnsupportedSaslMechanism), errors.Is(err, kerr.ClusterAuthorizationFailed):
		return authErr()
	case closedByPeer(err):
		// The broker took the connection, twice, and dropped it after the
		// first request: with SASL configured, some brokers (kfake among
		// them) close the connection on bad credentials instead of
		// answering with an error code; without SASL, brokers that
		// require it do the same.
		return authErr()
	}
	return &CheckError{Kind: ErrUnreachable, Broker: broker, Err: err}
}

// closedByPeer reports whether err is the broker closing the connection.
func closedByPeer(err error) bool {
	var eof *kgo.ErrFirstReadEOF
	return errors.As(err, &eof) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
