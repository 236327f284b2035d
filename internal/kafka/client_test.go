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
	"fmt"
	"log/slog"
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

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr []string
	}{
		{name: "empty", env: nil, want: Config{}},
		{
			name: "full",
			env: map[string]string{
				"KAFKA_BOOTSTRAP_SERVERS": " a:9092, b:9093 ,",
				"KAFKA_CLIENT_ID":         "me",
				"KAFKA_TLS_CA_FILE":       "ca.pem",
				"KAFKA_SASL_MECHANISM":    "scram-sha-512",
				"KAFKA_SASL_USERNAME":     "u",
				"KAFKA_SASL_PASSWORD":     "p",
			},
			want: Config{
				Brokers:  []string{"a:9092", "b:9093"},
				ClientID: "me",
				TLS:      TLSConfig{Enabled: true, CAFile: "ca.pem"},
				SASL:     SASLConfig{Mechanism: SASLScramSHA512, Username: "u", Password: "p"},
			},
		},
		{
			name: "every problem at once",
			env: map[string]string{
				"KAFKA_BOOTSTRAP_SERVERS":        "nohost",
				"KAFKA_TLS_ENABLED":              "maybe",
				"KAFKA_TLS_CERT_FILE":            "c.pem",
				"KAFKA_TLS_INSECURE_SKIP_VERIFY": "yes please",
				"KAFKA_SASL_MECHANISM":           "GSSAPI",
			},
			wantErr: []string{"KAFKA_TLS_ENABLED", "KAFKA_TLS_INSECURE_SKIP_VERIFY", `"nohost"`, "KAFKA_TLS_KEY_FILE", "GSSAPI"},
		},
		{
			name:    "mechanism without credentials",
			env:     map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN"},
			wantErr: []string{"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"},
		},
		{
			name:    "credentials without mechanism",
			env:     map[string]string{"KAFKA_SASL_USERNAME": "u"},
			wantErr: []string{"KAFKA_SASL_MECHANISM"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigFromEnv(envOf(tt.env))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("got no error, want one naming %v", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNewClientNeedsBrokers(t *testing.T) {
	_, err := NewClient(Config{}, nil)
	if !errors.Is(err, ErrNoBrokers) {
		t.Fatalf("got %v, want ErrNoBrokers", err)
	}
	if !strings.Contains(err.Error(), "KAFKA_BOOTSTRAP_SERVERS") || !strings.Contains(err.Error(), "kpipe up") {
		t.Fatalf("error %q does not tell the user what to do", err)
	}
}

func TestConfigNeverLogsPassword(t *testing.T) {
	cfg := Config{Brokers: []string{"a:1"}, SASL: SASLConfig{Mechanism: SASLPlain, Username: "u", Password: "hunter2"}}
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("x", "kafka", cfg)
	s := sb.String() + fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)
	if strings.Contains(s, "hunter2") {
		t.Fatalf("password leaked: %s", s)
	}
}

// TestSASL connects with each mechanism to a broker that requires it, and
// fails with a wrong password.
func TestSASL(t *testing.T) {
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "alice", "s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cfg := Config{Brokers: c.ListenAddrs(), SASL: SASLConfig{Mechanism: mech, Username: "alice", Password: "s3cret"}}
			cl, err := NewClient(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if err := Ping(t.Context(), cl); err != nil {
				t.Fatalf("ping with right password: %v", err)
			}
			cfg.SASL.Password = "wrong"
			bad, err := NewClient(cfg, nil, kgo.RequestRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			if err := bad.Ping(t.Context()); err == nil {
				t.Fatal("ping with wrong password succeeded")
			}
		})
	}
}

// TestTLS connects over TLS, verifying the broker against a CA file, with a
// client certificate.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caPEM, certPEM, keyPEM, serverCert := selfSigned(t)
	for name, b := range map[string][]byte{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg, err := ConfigFromEnv(envOf(map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(c.ListenAddrs(), ","),
		"KAFKA_TLS_CA_FILE":       filepath.Join(dir, "ca.pem"),
		"KAFKA_TLS_CERT_FILE":     filepath.Join(dir, "cert.pem"),
		"KAFKA_TLS_KEY_FILE":      filepath.Join(dir, "key.pem"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewClient(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := Ping(t.Context(), cl); err != nil {
		t.Fatalf("ping over TLS: %v", err)
	}

	cfg.TLS.CAFile = filepath.Join(dir, "missing.pem")
	if _, err := NewClient(cfg, nil); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Fatalf("got %v, want a CA file error", err)
	}
}

// selfSigned returns a CA-signed... simply a self-signed certificate valid for
// 127.0.0.1, used as both CA and leaf.
func selfSigned(t *testing.T) (caPEM, certPEM, keyPEM []byte, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kpipe test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
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
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, certPEM, keyPEM, cert
}
