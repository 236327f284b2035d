package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"kpipe/internal/config"
	"kpipe/internal/kafka"
)

func init() { register(newBrokerCmd) }

// brokerReadyPrefix starts the line "kpipe broker" prints once it accepts
// connections; what follows is the host:port to connect to.
const brokerReadyPrefix = "broker listening on "

// brokerExportPrefix starts the line after it: the shell line to copy into
// the terminals of the other processes.
const brokerExportPrefix = "export KAFKA_BOOTSTRAP_SERVERS="

type brokerOptions struct {
	addr         string
	port         int
	dataDir      string
	createTopics bool
	topicsFile   string
	syncWrites   bool
	saslMech     string
	saslUser     string
	tlsCert      string
	tlsKey       string
}

// brokerPasswordEnv holds the password of "kpipe broker --sasl-user": a
// secret comes from the environment, never from a flag.
const brokerPasswordEnv = "KPIPE_BROKER_SASL_PASSWORD"

func newBrokerCmd(env *Env) *cobra.Command {
	o := brokerOptions{}
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded Kafka broker alone",
		Long: `Run kpipe's embedded Kafka broker (franz-go's kfake: the real Kafka
protocol, consumer groups and transactions) as a process of its own, so that
"kpipe sim", "kpipe enrich" and "kpipe worker" can run as separate processes
against it (KAFKA_BOOTSTRAP_SERVERS=<the address>).

Readiness: once the broker accepts connections (and, with --create-topics,
the topics exist) it prints two lines to stdout:

  broker listening on HOST:PORT
  export KAFKA_BOOTSTRAP_SERVERS=HOST:PORT

Wait for the first before connecting; with --addr HOST:0 (or --port 0) it is
the only way to learn the port. Copy the second into the shells of "kpipe
enrich", "kpipe worker", "kpipe sim --kafka env" and "kpipe produce". Logs go
to stderr.

With --data-dir the broker keeps topics, records, committed offsets and
transaction state in that folder (created 0750) and a restart on the same
folder carries on where it stopped, also after kill -9; --sync-writes also
survives an operating-system crash, at a cost in throughput. Without it
everything is in memory. Only one broker may use a folder at a time.

With --sasl-mechanism and --sasl-user (password in $KPIPE_BROKER_SASL_PASSWORD)
the broker requires SASL; with --tls-cert and --tls-key it listens with TLS.
Both are for trying the KAFKA_SASL_* and KAFKA_TLS_* settings of the other
commands, not for production.

SIGINT or SIGTERM: the broker flushes its state and exits 0.`,
		Example: `  kpipe broker --data-dir ./data/kafka --create-topics
  kpipe broker --addr 127.0.0.1:0     # prints: broker listening on 127.0.0.1:NNNNN
  KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 kpipe enrich`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBroker(cmd, env, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", net.JoinHostPort(kafka.DefaultHost, strconv.Itoa(kafka.DefaultPort)), "host:port to listen on; port 0 picks a free port (printed on the ready line)")
	f.IntVar(&o.port, "port", -1, "port to listen on, overriding the port of --addr; 0 picks a free port")
	f.StringVar(&o.dataDir, "data-dir", "", "folder persisting the broker's state across restarts (empty: in memory)")
	f.BoolVar(&o.createTopics, "create-topics", false, "create the topics of the topics file (as \"kpipe topics create\" does) before reporting ready")
	f.StringVar(&o.topicsFile, "topics-file", "", "topics file for --create-topics (default <config-dir>/topics.yaml)")
	f.BoolVar(&o.syncWrites, "sync-writes", false, "fsync every produced batch (with --data-dir)")
	f.StringVar(&o.saslMech, "sasl-mechanism", "", "require SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with --sasl-user)")
	f.StringVar(&o.saslUser, "sasl-user", "", "the SASL user; its password is $"+brokerPasswordEnv)
	f.StringVar(&o.tlsCert, "tls-cert", "", "listen with TLS: PEM certificate file (with --tls-key)")
	f.StringVar(&o.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
	return cmd
}

func runBroker(cmd *cobra.Command, env *Env, o brokerOptions) error {
	ctx := cmd.Context()
	host, portStr, err := net.SplitHostPort(o.addr)
	if err != nil {
		return usage(fmt.Errorf("--addr %q: want host:port", o.addr))
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return usage(fmt.Errorf("--addr %q: the port must be a number from 0 to 65535", o.addr))
	}
	if cmd.Flags().Changed("port") {
		if o.port < 0 || o.port > 65535 {
			return usage(fmt.Errorf("--port %d: want 0 to 65535", o.port))
		}
		port = o.port
	}
	if host == "" {
		host = kafka.DefaultHost
	}
	var specs []kafka.TopicSpec
	if o.createTopics {
		file := o.topicsFile
		if file == "" {
			file = filepath.Join(env.ConfigDir, "topics.yaml")
		}
		if specs, err = kafka.LoadTopics(file); err != nil {
			return usage(err)
		}
	} else if o.topicsFile != "" {
		return usage(errors.New("--topics-file needs --create-topics"))
	}
	if o.syncWrites && o.dataDir == "" {
		return usage(errors.New("--sync-writes needs --data-dir"))
	}
	eo := kafka.EmbeddedOptions{Host: host, Port: port, DataDir: o.dataDir, DirMode: env.DirMode, SyncWrites: o.syncWrites, Logger: env.Logger}
	// The readiness check connects as a client would.
	self := kafka.Config{ClientID: "kpipe-broker"}
	if o.saslMech != "" || o.saslUser != "" {
		pw, _ := env.Getenv(brokerPasswordEnv)
		if o.saslMech == "" || o.saslUser == "" || pw == "" {
			return usage(fmt.Errorf("SASL needs --sasl-mechanism, --sasl-user and $%s", brokerPasswordEnv))
		}
		u := kafka.SASLUser{Mechanism: strings.ToUpper(o.saslMech), User: o.saslUser, Password: config.Secret(pw)}
		eo.Users = []kafka.SASLUser{u}
		self.SASL = kafka.SASLConfig{Mechanism: u.Mechanism, Username: u.User, Password: u.Password}
		if err := self.Validate(); err != nil && !errors.Is(err, kafka.ErrNoBrokers) {
			return usage(err)
		}
	}
	if o.tlsCert != "" || o.tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return usage(fmt.Errorf("--tls-cert and --tls-key: %w", err))
		}
		eo.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		// Its own listener: no need to verify the certificate.
		self.TLS = kafka.TLSConfig{Enabled: true, InsecureSkipVerify: true}
	}
	if o.dataDir != "" {
		lock, err := acquireLock(env, o.dataDir, "kpipe-broker.lock", "kpipe broker")
		if err != nil {
			return err
		}
		defer lock.release()
	}

	broker, err := kafka.StartEmbedded(ctx, eo)
	if err != nil {
		if !kafka.PortFree(host, port) {
			return fmt.Errorf("%s:%d is in use (another broker?): %w", host, port, err)
		}
		return err
	}
	defer broker.Close()
	addrs := broker.Addrs()

	self.Brokers = addrs
	if err := brokerReady(ctx, env, self, specs); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it was ready: a clean stop still
		}
		return err
	}
	fmt.Fprintf(env.Stdout, "%s%s\n", brokerReadyPrefix, strings.Join(addrs, ","))
	fmt.Fprintf(env.Stdout, "%s%s\n", brokerExportPrefix, strings.Join(addrs, ","))
	env.Logger.Info("broker_ready", "addr", strings.Join(addrs, ","), "data_dir", o.dataDir)

	<-ctx.Done()
	env.Logger.Info("broker_stopping")
	return nil
}

// brokerReady asks the broker through a client, so that ready means a client
// gets answers, and creates the topics of specs.
func brokerReady(ctx context.Context, env *Env, self kafka.Config, specs []kafka.TopicSpec) error {
	cl, err := kafka.NewClient(self, env.Logger)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := kafka.Ping(ctx, cl); err != nil {
		return err
	}
	if len(specs) == 0 {
		return nil
	}
	created, err := kafka.EnsureTopics(ctx, cl, specs, 1)
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	env.Logger.Info("broker_topics", "created", strings.Join(created, ","), "listed", len(specs))
	return nil
}
