package kafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testCA is a certificate authority made at test time, and a server
// certificate it signed for 127.0.0.1.
type testCA struct {
	caFile string          // PEM of the CA certificate
	server tls.Certificate // leaf for 127.0.0.1, signed by the CA
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kpipe test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return testCA{caFile: caFile, server: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}}
}

// TestTLSWithTestCA runs a TLS listener whose certificate a CA made by the
// test signs: with the CA the client connects and works; without it (system
// roots), or in plaintext, Check fails with ErrTLS naming the broker and
// what to set.
func TestTLSWithTestCA(t *testing.T) {
	ca := newTestCA(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.server}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	broker := c.ListenAddrs()[0]

	cfg, err := ConfigFromEnv(envOf(map[string]string{"KAFKA_BOOTSTRAP_SERVERS": broker, "KAFKA_TLS_CA_FILE": ca.caFile}))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(t.Context(), cfg); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	cl, err := NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := EnsureTopics(t.Context(), cl, []TopicSpec{{Name: "t", Partitions: 1, Retention: Retention(time.Hour)}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "t", Value: []byte("over TLS")}).FirstErr(); err != nil {
		t.Fatalf("produce over TLS: %v", err)
	}

	for name, cfg := range map[string]Config{
		"system roots": {Brokers: []string{broker}, TLS: TLSConfig{Enabled: true}},
		"plaintext":    {Brokers: []string{broker}},
	} {
		err := Check(t.Context(), cfg)
		var ce *CheckError
		if !errors.Is(err, ErrTLS) || !errors.As(err, &ce) || ce.Broker != broker || !IsFatal(err) {
			t.Fatalf("%s: got %v, want a fatal ErrTLS naming %s", name, err, broker)
		}
		if want := "KAFKA_TLS"; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not say what to set", name, err)
		}
	}
	if err := Check(t.Context(), Config{Brokers: []string{broker}, TLS: TLSConfig{Enabled: true}}); !errors.As(err, new(x509.UnknownAuthorityError)) {
		t.Errorf("system roots: got %v, want x509.UnknownAuthorityError as the cause", err)
	}
}
