package tunnel

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ec2csi/ec2csi/internal/efscert"
)

const testServerName = "fs-12345678.efs.us-east-1.amazonaws.com"

// testPKI is a throwaway CA and a server certificate for testServerName.
type testPKI struct {
	dir        string
	caFile     string
	serverCert tls.Certificate
	certFile   string // server cert + key, PEM, for stunnel
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tunnel test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: testServerName},
		DNSNames:  []string{testServerName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: dir, caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem")}
	writePEM(t, p.caFile, pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	keyDER, _ := x509.MarshalPKCS8PrivateKey(srvKey)
	writePEM(t, p.certFile, pem.Block{Type: "CERTIFICATE", Bytes: srvDER}, pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	p.serverCert = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	return p
}

func writePEM(t testing.TB, path string, blocks ...pem.Block) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		pem.Encode(f, &b)
	}
	f.Close()
}

// shared node key: 3072-bit generation is slow, and every test may use it.
var (
	keyOnce sync.Once
	keyVal  *rsa.PrivateKey
	keyErr  error
)

func testNodeKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tunnel-key-")
		if err != nil {
			keyErr = err
			return
		}
		defer os.RemoveAll(dir)
		keyVal, keyErr = efscert.LoadOrCreateKey(dir)
	})
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return keyVal
}

// tlsServer is a Go TLS server standing in for a mount target. It records
// the client certificates it saw and runs handle on each connection.
type tlsServer struct {
	ln     net.Listener
	mu     sync.Mutex
	certs  []*x509.Certificate
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	closed bool
}

func startTLSServer(t testing.TB, pki *testPKI, handle func(*tls.Conn), tweaks ...func(*tls.Config)) *tlsServer {
	t.Helper()
	conf := &tls.Config{
		Certificates: []tls.Certificate{pki.serverCert},
		ClientAuth:   tls.RequireAnyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	for _, tw := range tweaks {
		tw(conf)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				s.mu.Lock()
				s.certs = append(s.certs, tc.ConnectionState().PeerCertificates...)
				s.mu.Unlock()
				handle(tc)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *tlsServer) addr() string { return s.ln.Addr().String() }

// cutAll drops every connection, as a mount target failing over would.
func (s *tlsServer) cutAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *tlsServer) close() {
	s.mu.Lock()
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *tlsServer) clientCerts() []*x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*x509.Certificate(nil), s.certs...)
}

// echo copies what it reads back, then half-closes when the client does.
func echo(c *tls.Conn) {
	io.Copy(c, c)
	c.CloseWrite()
}

func freePortRange(t testing.TB, n int) (int, int) {
	t.Helper()
	// Ports below Linux's ephemeral range (32768 up), where no outgoing
	// connection can take one mid-test; picked per test process so
	// parallel packages do not collide; verified bindable.
	base := 21100 + (os.Getpid()%500)*20
	for try := 0; try < 50; try++ {
		ok := true
		for p := base; p < base+n; p++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(p)))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return base, base + n - 1
		}
		base += n + 7
	}
	t.Fatal("no free port range")
	return 0, 0
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }

func dialLocal(t testing.TB, port int) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", itoa(port)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}
