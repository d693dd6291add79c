package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/asn1"
	"errors"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ec2csi/ec2csi/internal/efscert"
)

func newTestManager(t testing.TB, dir string, portMin, portMax int, reg prometheus.Registerer) *Manager {
	t.Helper()
	m, err := NewManager(ManagerConfig{
		StateDir:    dir,
		PortMin:     portMin,
		PortMax:     portMax,
		Key:         testNodeKey(t),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "token/+="),
		ClientInfo:  &efscert.ClientInfo{Source: "test", Version: "0"},
		Registerer:  reg,
		Logger:      quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

func specFor(pki *testPKI, srv *tlsServer) Spec {
	return Spec{FileSystemID: "fs-12345678", Target: srv.addr(), ServerName: testServerName, CAFile: pki.caFile}
}

func TestTunnelCarriesBothWaysWithEFSCertificate(t *testing.T) {
	pki := newTestPKI(t)
	srv := startTLSServer(t, pki, echo)
	lo, hi := freePortRange(t, 4)
	reg := prometheus.NewRegistry()
	m := newTestManager(t, t.TempDir(), lo, hi, reg)
	defer m.Close()

	spec := specFor(pki, srv)
	spec.AccessPointID = "fsap-0abc"
	spec.IAM = true
	port, err := m.Acquire(context.Background(), spec, "/mnt/a")
	if err != nil {
		t.Fatal(err)
	}
	c := dialLocal(t, port)
	defer c.Close()
	payload := make([]byte, 24<<20+123)
	rand.Read(payload)
	want := sha256.Sum256(payload)
	go func() {
		c.Write(payload)
		c.CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(payload)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("echoed %d bytes, checksum mismatch=%v", n, !bytes.Equal(h.Sum(nil), want[:]))
	}

	certs := srv.clientCerts()
	if len(certs) != 1 {
		t.Fatalf("server saw %d client certificates", len(certs))
	}
	exts := map[string][]byte{}
	for _, e := range certs[0].Extensions {
		exts[e.Id.String()] = e.Value
	}
	var s string
	if _, err := asn1.UnmarshalWithParams(exts["1.3.6.1.4.1.4843.7.3"], &s, "utf8"); err != nil || s != "fs-12345678" {
		t.Errorf("file system extension %q, %v", s, err)
	}
	if _, err := asn1.UnmarshalWithParams(exts["1.3.6.1.4.1.4843.7.1"], &s, "utf8"); err != nil || s != "fsap-0abc" {
		t.Errorf("access point extension %q, %v", s, err)
	}
	var auth struct {
		AccessKeyID string `asn1:"utf8"`
		Signature   []byte
		Time        time.Time `asn1:"utc"`
		Token       string    `asn1:"optional,explicit,tag:0,utf8"`
	}
	if _, err := asn1.Unmarshal(exts["1.3.6.1.4.1.4843.7.2"], &auth); err != nil {
		t.Fatalf("client auth extension: %v", err)
	}
	if auth.AccessKeyID != "AKIDTEST" || auth.Token != "token/+=" || len(auth.Signature) != 64 {
		t.Errorf("client auth %+v", auth)
	}
	var info []string
	if _, err := asn1.Unmarshal(exts["1.3.6.1.4.1.4843.7.4"], &info); err != nil {
		// A SEQUENCE of UTF8Strings decodes into a struct more readily.
		var st struct {
			A string `asn1:"utf8"`
			B string `asn1:"utf8"`
		}
		if _, err := asn1.Unmarshal(exts["1.3.6.1.4.1.4843.7.4"], &st); err != nil || st.A != "test" {
			t.Errorf("client info %+v, %v", st, err)
		}
	}

	// Both directions were counted.
	lbl := []string{itoa(port), "fs-12345678"}
	if got := testutil.ToFloat64(m.metrics.bytes.WithLabelValues(append(lbl, dirToServer)...)); got != float64(len(payload)) {
		t.Errorf("to_server bytes %v, want %d", got, len(payload))
	}
	if got := testutil.ToFloat64(m.metrics.bytes.WithLabelValues(append(lbl, dirFromServer)...)); got != float64(len(payload)) {
		t.Errorf("from_server bytes %v, want %d", got, len(payload))
	}
	if got := testutil.ToFloat64(m.metrics.accepted.WithLabelValues(lbl...)); got != 1 {
		t.Errorf("connections_total %v", got)
	}
}

// TestTLS12AndSmallWrites carries data from a TLS 1.2 server (explicit
// nonces, a different record layout) written in odd small pieces, so
// records straddle socket reads.
func TestTLS12AndSmallWrites(t *testing.T) {
	pki := newTestPKI(t)
	const total = 3<<20 + 17
	payload := make([]byte, total)
	rand.Read(payload)
	srv := startTLSServer(t, pki, func(c *tls.Conn) {
		for off, i := 0, 0; off < total; i++ {
			n := min(total-off, 1+(i*7919)%40000)
			if _, err := c.Write(payload[off : off+n]); err != nil {
				return
			}
			off += n
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		c.CloseWrite()
		io.Copy(io.Discard, c)
	}, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
	lo, hi := freePortRange(t, 2)
	m := newTestManager(t, t.TempDir(), lo, hi, nil)
	defer m.Close()
	port, err := m.Acquire(context.Background(), specFor(pki, srv), "/mnt/tls12")
	if err != nil {
		t.Fatal(err)
	}
	c := dialLocal(t, port)
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("got %d bytes, want %d identical", len(got), len(payload))
	}
}

func TestHalfCloseBothWays(t *testing.T) {
	pki := newTestPKI(t)
	// The server reads the whole request, then answers and closes.
	srv := startTLSServer(t, pki, func(c *tls.Conn) {
		req, _ := io.ReadAll(c)
		c.Write([]byte("got " + itoa(len(req))))
		c.CloseWrite()
	})
	lo, hi := freePortRange(t, 2)
	m := newTestManager(t, t.TempDir(), lo, hi, nil)
	defer m.Close()
	port, err := m.Acquire(context.Background(), specFor(pki, srv), "/mnt/h")
	if err != nil {
		t.Fatal(err)
	}
	c := dialLocal(t, port)
	defer c.Close()
	c.Write(bytes.Repeat([]byte("x"), 100000))
	c.CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != "got 100000" {
		t.Fatalf("response %q", resp)
	}
}

func TestServerIdentityIsVerified(t *testing.T) {
	pki := newTestPKI(t)
	other := newTestPKI(t)
	srv := startTLSServer(t, pki, echo)
	lo, hi := freePortRange(t, 4)
	m := newTestManager(t, t.TempDir(), lo, hi, nil)
	defer m.Close()
	cases := map[string]Spec{
		"wrong name": {FileSystemID: "fs-1", Target: srv.addr(), ServerName: "fs-99999999.efs.us-east-1.amazonaws.com", CAFile: pki.caFile},
		"untrusted":  {FileSystemID: "fs-2", Target: srv.addr(), ServerName: testServerName, CAFile: other.caFile},
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			port, err := m.Acquire(context.Background(), spec, "/mnt/"+name)
			if err != nil {
				t.Fatal(err)
			}
			c := dialLocal(t, port)
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			c.Write([]byte("hello"))
			n, err := c.Read(make([]byte, 10))
			if err == nil || n != 0 {
				t.Fatalf("read %d bytes through an unverified server", n)
			}
			lbl := []string{itoa(port), spec.FileSystemID, errHandshake}
			if got := testutil.ToFloat64(m.metrics.errors.WithLabelValues(lbl...)); got != dialAttempts {
				t.Errorf("handshake errors %v, want %d", got, dialAttempts)
			}
		})
	}
}

func TestRedialAfterUpstreamLoss(t *testing.T) {
	pki := newTestPKI(t)
	srv := startTLSServer(t, pki, echo)
	lo, hi := freePortRange(t, 2)
	m := newTestManager(t, t.TempDir(), lo, hi, nil)
	defer m.Close()
	spec := specFor(pki, srv)
	port, err := m.Acquire(context.Background(), spec, "/mnt/r")
	if err != nil {
		t.Fatal(err)
	}
	roundTrip := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		b := make([]byte, 4)
		_, err := io.ReadFull(c, b)
		return err
	}
	c := dialLocal(t, port)
	if err := roundTrip(c); err != nil {
		t.Fatal(err)
	}
	srv.cutAll()
	// The client sees its connection end instead of hanging.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection survived its upstream")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("client connection hung after the upstream was cut")
	}
	c.Close()
	c = dialLocal(t, port)
	defer c.Close()
	if err := roundTrip(c); err != nil {
		t.Fatalf("after redial: %v", err)
	}
	if got := testutil.ToFloat64(m.metrics.redials.WithLabelValues(itoa(port), spec.FileSystemID)); got != 1 {
		t.Errorf("redials %v, want 1", got)
	}
}

func TestManagerSharesRestoresAndReleases(t *testing.T) {
	pki := newTestPKI(t)
	srv := startTLSServer(t, pki, echo)
	lo, hi := freePortRange(t, 8)
	dir := t.TempDir()
	ctx := context.Background()
	m := newTestManager(t, dir, lo, hi, nil)
	a := specFor(pki, srv)
	b := a
	b.AccessPointID = "fsap-b"
	pa1, err := m.Acquire(ctx, a, "/pods/1/vol")
	if err != nil {
		t.Fatal(err)
	}
	pa2, _ := m.Acquire(ctx, a, "/pods/2/vol")
	pb, _ := m.Acquire(ctx, b, "/pods/3/vol")
	if pa1 != pa2 {
		t.Errorf("two mounts of one spec got ports %d and %d", pa1, pa2)
	}
	if pb == pa1 {
		t.Error("a different access point shares the tunnel")
	}
	if again, _ := m.Acquire(ctx, a, "/pods/1/vol"); again != pa1 {
		t.Error("re-acquiring a mount key is not idempotent")
	}
	if _, err := m.Acquire(ctx, b, "/pods/1/vol"); !errors.Is(err, ErrMountConflict) {
		t.Errorf("re-using a mount key for another spec: %v", err)
	}
	if _, err := NewManager(ManagerConfig{StateDir: dir}); err == nil {
		t.Error("a second manager took the same state directory")
	}

	// An established connection, then a restart of the manager.
	m.Close()
	m = newTestManager(t, dir, lo, hi, nil)
	defer m.Close()
	if got := len(m.Tunnels()); got != 2 {
		t.Fatalf("restored %d tunnels, want 2", got)
	}
	for _, ti := range m.Tunnels() {
		if !ti.Bound {
			t.Errorf("port %d not rebound", ti.Port)
		}
	}
	c := dialLocal(t, pa1)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("after restart"))
	buf := make([]byte, 13)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "after restart" {
		t.Fatalf("restored tunnel: %q %v", buf, err)
	}
	c.Close()
	// The restored manager knows the mounts: same port again.
	if p, _ := m.Acquire(ctx, a, "/pods/2/vol"); p != pa1 {
		t.Errorf("restored mount got port %d, want %d", p, pa1)
	}

	if err := m.Release(ctx, "/pods/1/vol"); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(pa1))); err != nil {
		t.Error("tunnel closed while a mount still uses it")
	} else {
		c.Close()
	}
	m.Release(ctx, "/pods/2/vol")
	m.Release(ctx, "/pods/2/vol") // twice: idempotent
	if _, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(pa1))); err == nil {
		t.Error("tunnel still listening after its last mount went")
	}
	if got := len(m.Tunnels()); got != 1 {
		t.Errorf("%d tunnels left, want 1", got)
	}
}

func TestRestoreDropsTunnelsOfAnotherBoot(t *testing.T) {
	pki := newTestPKI(t)
	srv := startTLSServer(t, pki, echo)
	lo, hi := freePortRange(t, 2)
	dir := t.TempDir()
	m := newTestManager(t, dir, lo, hi, nil)
	if _, err := m.Acquire(context.Background(), specFor(pki, srv), "/m"); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m2, err := NewManager(ManagerConfig{StateDir: dir, PortMin: lo, PortMax: hi, Key: testNodeKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	m2.bootID = "another boot"
	if err := m2.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if n := len(m2.Tunnels()); n != 0 {
		t.Errorf("%d tunnels of an earlier boot restored", n)
	}
}

func TestPortChurnNeverExhaustsSmallRange(t *testing.T) {
	pki := newTestPKI(t)
	srv := startTLSServer(t, pki, echo)
	lo, hi := freePortRange(t, 3)
	m := newTestManager(t, t.TempDir(), lo, hi, nil)
	defer m.Close()
	ctx := context.Background()
	cycles := 2000
	if testing.Short() {
		cycles = 300
	}
	// Two long-lived tunnels hold two of the three ports; the third is
	// opened and closed over and over by short-lived mounts, some with a
	// live connection at release time.
	base := specFor(pki, srv)
	hold := base
	hold.AccessPointID = "fsap-hold"
	if _, err := m.Acquire(ctx, base, "/hold/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acquire(ctx, hold, "/hold/2"); err != nil {
		t.Fatal(err)
	}
	goroutines := runtime.NumGoroutine()
	for i := range cycles {
		s := base
		s.AccessPointID = "fsap-" + itoa(i)
		key := "/churn/" + itoa(i)
		port, err := m.Acquire(ctx, s, key)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if i%100 == 0 {
			c := dialLocal(t, port)
			c.Write([]byte("x"))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Read(make([]byte, 1))
			defer c.Close()
		}
		if err := m.Release(ctx, key); err != nil {
			t.Fatalf("cycle %d release: %v", i, err)
		}
	}
	if n := len(m.Tunnels()); n != 2 {
		t.Errorf("%d tunnels after churn, want 2", n)
	}
	// No goroutine is left behind by closed tunnels.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines+2 {
		t.Errorf("%d goroutines after churn, %d before", n, goroutines)
	}
	// The third port is free again.
	free := 0
	for p := lo; p <= hi; p++ {
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(p))); err == nil {
			ln.Close()
			free++
		}
	}
	if free != 1 {
		t.Errorf("%d ports free after churn, want 1", free)
	}
}

func TestDaemonAndClient(t *testing.T) {
	pki := newTestPKI(t)
	srv := startTLSServer(t, pki, echo)
	lo, hi := freePortRange(t, 2)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := RunDaemon(ctx, DaemonConfig{
			Manager: ManagerConfig{StateDir: dir, PortMin: lo, PortMax: hi, Key: testNodeKey(t)},
			Ready:   ready,
		})
		if err != nil {
			t.Error(err)
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	cl := NewClient(filepath.Join(dir, SocketFile))
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	if err := cl.Restore(rctx); err != nil {
		t.Fatal(err)
	}
	port, err := cl.Acquire(ctx, specFor(pki, srv), "/m/1")
	if err != nil {
		t.Fatal(err)
	}
	c := dialLocal(t, port)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("via daemon"))
	b := make([]byte, 10)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "via daemon" {
		t.Fatalf("%q %v", b, err)
	}
	c.Close()
	s2 := specFor(pki, srv)
	s2.AccessPointID = "x"
	if _, err := cl.Acquire(ctx, s2, "/m/1"); !errors.Is(err, ErrMountConflict) {
		t.Errorf("conflict over the socket: %v", err)
	}
	if _, err := cl.Acquire(ctx, s2, "/m/2"); err != nil {
		t.Fatal(err)
	}
	s3 := specFor(pki, srv)
	s3.AccessPointID = "y"
	if _, err := cl.Acquire(ctx, s3, "/m/3"); !errors.Is(err, ErrNoPorts) {
		t.Errorf("third tunnel in a two-port range: %v", err)
	}
	list, err := cl.Tunnels(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("tunnels %v %v", list, err)
	}
	if err := cl.Release(ctx, "/m/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Acquire(ctx, Spec{}, "/m/4"); err == nil {
		t.Error("an empty spec was accepted")
	}
}

// TestReplacementWaitsForLockAndRestores starts a second manager while the
// first still runs, as a daemon upgrade does: it waits for the lock, then
// restores the tunnel on the same port.
func TestReplacementWaitsForLockAndRestores(t *testing.T) {
	pki := newTestPKI(t)
	srv := startTLSServer(t, pki, echo)
	lo, hi := freePortRange(t, 2)
	dir := t.TempDir()
	m1 := newTestManager(t, dir, lo, hi, nil)
	port, err := m1.Acquire(context.Background(), specFor(pki, srv), "/m")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		m   *Manager
		err error
	}
	got := make(chan result, 1)
	go func() {
		m, err := NewManager(ManagerConfig{StateDir: dir, PortMin: lo, PortMax: hi, Key: testNodeKey(t),
			LockWait: 10 * time.Second, Logger: quietLogger()})
		got <- result{m, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("second manager did not wait for the lock: %v", r.err)
	case <-time.After(300 * time.Millisecond):
	}
	m1.Close()
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.m.Close()
	if err := r.m.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := dialLocal(t, port)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("hi"))
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("replacement does not serve port %d: %v", port, err)
	}
}
