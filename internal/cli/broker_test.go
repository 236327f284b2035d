package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/kafka"
)

var brokerReadyRE = regexp.MustCompile(`(?m)^broker listening on (127\.0\.0\.1:(\d+))$`)

// TestBrokerProcess runs "kpipe broker" as an OS process the way the chaos
// suite does: it reports ready on one line with the free port it took, has
// the topics, refuses a second broker on its data folder, survives kill -9
// with its records, and stops on SIGTERM with exit 0.
func TestBrokerProcess(t *testing.T) {
	data := filepath.Join(t.TempDir(), "kafka")
	args := []string{"--config-dir", repoConfig(), "broker", "--addr", "127.0.0.1:0", "--data-dir", data, "--create-topics"}
	b := startKpipe(t, nil, args...)
	m := b.waitLine(t, brokerReadyRE)
	addr, port := m[1], m[2]
	checkMode(t, data, dirMode)

	cl, err := kafka.NewClient(kafka.Config{Brokers: []string{addr}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{kafka.TopicEvents, kafka.TopicEnrichmentErrors, "itel.cabinet.task.tracking"} {
		if !topics.Has(name) {
			t.Fatalf("topic %s missing after --create-topics (have %v)", name, topics.Names())
		}
	}
	for i := range 10 {
		if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: kafka.TopicEvents, Key: []byte{byte(i)}, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// A second broker on the same folder is refused, naming the first.
	second := startKpipe(t, nil, "broker", "--addr", "127.0.0.1:0", "--data-dir", data)
	if code := second.exitCode(); code != ExitFailure {
		t.Fatalf("second broker on %s: exit %d, want %d\n%s", data, code, ExitFailure, second.errOut)
	}
	if want := "kpipe broker (pid " + strconv.Itoa(b.cmd.Process.Pid) + ")"; !strings.Contains(second.errOut.String(), want) {
		t.Fatalf("second broker's error lacks %q:\n%s", want, second.errOut)
	}

	// kill -9, then a restart on the same port and folder takes over the
	// dead process's lock and still holds the records.
	b.signal(t, syscall.SIGKILL)
	b.exitCode()
	b = startKpipe(t, nil, "broker", "--port", port, "--data-dir", data)
	if m := b.waitLine(t, brokerReadyRE); m[1] != addr {
		t.Fatalf("restarted broker on %s, want %s", m[1], addr)
	}
	rd, err := kafka.NewClient(kafka.Config{Brokers: []string{addr}}, nil,
		kgo.ConsumeTopics(kafka.TopicEvents), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for n := 0; n < 10; {
		fs := rd.PollFetches(t.Context())
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}

	b.signal(t, syscall.SIGTERM)
	if code := b.exitCode(); code != ExitOK {
		t.Fatalf("broker after SIGTERM: exit %d\n%s", code, b.errOut)
	}
}

func TestBrokerHelpAndFlags(t *testing.T) {
	code, out, _ := runCLI(t, nil, "broker", "--help")
	if code != ExitOK || !strings.Contains(out, "broker listening on HOST:PORT") || !strings.Contains(out, "--data-dir") {
		t.Fatalf("help: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{
		{"broker", "--addr", "nonsense"},
		{"broker", "--port", "70000"},
		{"broker", "--sync-writes"},
		{"broker", "--topics-file", "x.yaml"},
		{"broker", "extra"},
		{"broker", "--sasl-user", "alice"},
		{"broker", "--sasl-mechanism", "PLAIN", "--sasl-user", "alice"}, // no password in the environment
		{"broker", "--tls-cert", "missing.pem", "--tls-key", "missing.pem"},
	} {
		if code, _, errOut := runCLI(t, nil, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, errOut)
		}
	}
}

// TestBrokerSASLAndTLS runs "kpipe broker" requiring SASL over TLS, and
// "kpipe topics create" against it: with the right settings it works; a
// wrong password or a missing CA is one clear error.
func TestBrokerSASLAndTLS(t *testing.T) {
	certFile, keyFile := selfSignedFiles(t)
	b := startKpipe(t, []string{brokerPasswordEnv + "=s3cret"}, "broker", "--addr", "127.0.0.1:0",
		"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "alice", "--tls-cert", certFile, "--tls-key", keyFile)
	addr := b.waitLine(t, brokerReadyRE)[1]
	vars := map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": addr, "KAFKA_TLS_CA_FILE": certFile,
		"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": "s3cret",
	}
	topics := func() (int, string) {
		code, _, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "--log-level", "error", "topics", "create")
		return code, errOut
	}
	if code, errOut := topics(); code != ExitOK {
		t.Fatalf("right settings: exit %d\n%s", code, errOut)
	}
	vars["KAFKA_SASL_PASSWORD"] = "not-it"
	if code, errOut := topics(); code != ExitFailure || !strings.Contains(errOut, "kafka authentication failed") ||
		!strings.Contains(errOut, "SCRAM-SHA-512") || !strings.Contains(errOut, addr) {
		t.Fatalf("wrong password: exit %d\n%s", code, errOut)
	}
	vars["KAFKA_SASL_PASSWORD"] = "s3cret"
	delete(vars, "KAFKA_TLS_CA_FILE")
	vars["KAFKA_TLS_ENABLED"] = "true"
	if code, errOut := topics(); code != ExitFailure || !strings.Contains(errOut, "kafka tls handshake failed") ||
		!strings.Contains(errOut, "KAFKA_TLS_CA_FILE") || !strings.Contains(errOut, addr) {
		t.Fatalf("without the CA: exit %d\n%s", code, errOut)
	}
	b.signal(t, syscall.SIGTERM)
	if code := b.exitCode(); code != ExitOK {
		t.Fatalf("broker after SIGTERM: exit %d\n%s", code, b.errOut)
	}
}

// selfSignedFiles writes a self-signed certificate for 127.0.0.1 and its
// key (PEM) and returns their paths; the certificate is its own CA.
func selfSignedFiles(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
