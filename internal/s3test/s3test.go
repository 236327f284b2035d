// Package s3test starts a real S3 server for tests: versitygw, the Versity
// S3 Gateway (Apache 2.0), on its POSIX backend in a temporary folder,
// listening on a free 127.0.0.1 port. It honours conditional writes
// (If-None-Match: "*" on PutObject), which Delta commits on S3 rely on.
//
// The server binary is, in this order: $KPIPE_VERSITYGW, versitygw on
// PATH (.ci/run installs it there), or one built with "go install" from the
// module proxy into the user's cache folder on first use (a few minutes on
// a small machine; later runs reuse it).
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// VersitygwModule is the versitygw command the harness builds when none is
// installed; .ci/run installs the same version.
const VersitygwModule = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Server is a running S3 server with one bucket.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:PORT; it needs
	// path-style addressing.
	Endpoint string
	// AccessKey and SecretKey are the root user's credentials.
	AccessKey, SecretKey string
	// Region is the server's region.
	Region string
	// Bucket is the bucket Start created.
	Bucket string
	// Dir is the folder the server stores buckets and objects in.
	Dir string
}

// Credentials returns the server's credentials for the AWS SDK.
func (s *Server) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")
}

// Client returns an S3 client of the server, sending through hc if not nil.
func (s *Server) Client(hc *http.Client) *s3.Client {
	o := s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  s.Credentials(),
	}
	if hc != nil {
		o.HTTPClient = hc
	}
	return s3.New(o)
}

// URL returns the s3:// table location of prefix in the server's bucket,
// with the endpoint, path style and region in its query.
func (s *Server) URL(prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&path_style=true&region=%s", s.Bucket, strings.Trim(prefix, "/"), s.Endpoint, s.Region)
}

// SetEnv sets the AWS environment variables of the server's credentials
// and region for the rest of the test (t.Setenv: not with t.Parallel).
func (s *Server) SetEnv(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", s.Region)
	// No shared config or credentials files of the machine's user.
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(s.Dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(s.Dir, "no-aws-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Start starts a server with a new bucket and stops it when the test ends.
// It fails the test if the server cannot be found, built or started.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o750); err != nil {
		t.Fatal(err)
	}
	srv := &Server{AccessKey: "kpipetest", SecretKey: "kpipetestsecret", Region: "us-east-1", Bucket: "kpipe-test", Dir: dir}
	var logBuf strings.Builder
	var lmu sync.Mutex
	for try := 0; ; try++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command(bin, "--access", srv.AccessKey, "--secret", srv.SecretKey, "--region", srv.Region, "--port", addr, "--quiet", "posix", root)
		cmd.Stdout = lockedWriter{&lmu, &logBuf}
		cmd.Stderr = lockedWriter{&lmu, &logBuf}
		if err := cmd.Start(); err != nil {
			t.Fatalf("s3test: starting %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		srv.Endpoint = "http://" + addr
		if err := waitListening(addr, exited, 20*time.Second); err != nil {
			stop()
			lmu.Lock()
			out := logBuf.String()
			lmu.Unlock()
			if try < 2 && strings.Contains(out, "address already in use") {
				continue // the free port was taken meanwhile
			}
			t.Fatalf("s3test: versitygw on %s: %v\n%s", addr, err, out)
		}
		t.Cleanup(stop)
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.Client(nil).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &srv.Bucket}); err != nil {
		t.Fatalf("s3test: creating bucket %s: %v", srv.Bucket, err)
	}
	return srv
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("the server exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the path of the versitygw binary, building it into the
// user's cache folder if none is installed.
func Binary() (string, error) {
	binOnce.Do(func() { binPath, binErr = findOrBuild() })
	return binPath, binErr
}

func findOrBuild() (string, error) {
	if p := os.Getenv("KPIPE_VERSITYGW"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	_, version, _ := strings.Cut(VersitygwModule, "@")
	dir := filepath.Join(cache, "kpipe", "versitygw-"+version)
	bin := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Install into a folder of its own, then rename: concurrent test
	// binaries may build at once, and none sees a half-written file.
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", VersitygwModule)
	cmd.Dir = tmp // outside any module: the version is the one named
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("no versitygw on PATH, and building it (go install %s) failed: %v\n%s\n(install it with .ci/run, or set KPIPE_VERSITYGW to a versitygw binary)", VersitygwModule, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "versitygw"), bin); err != nil {
		return "", err
	}
	return bin, nil
}
