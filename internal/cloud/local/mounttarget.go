package local

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/efscert"
)

// The local mount target's files, under <state dir>/efs-tls/.
const (
	mountTargetDir = "efs-tls"
	caCertFile     = "ca.pem"
	caKeyFile      = "ca-key.pem"
	serverCertFile = "server.pem"
	serverKeyFile  = "server-key.pem"
	portFile       = "port"
)

// MountTargetPortMin..MountTargetPortMax is where the local mount target
// takes its port the first time: next to the tunnels' default range and,
// like it, below Linux's ephemeral ports, so that an outgoing connection
// never holds the port when a restarted plugin binds it again.
const (
	MountTargetPortMin = 21050
	MountTargetPortMax = 21149
)

// Greeting lines, the local mount target's whole protocol: after the TLS
// handshake it sends one line and closes.
const (
	greetingOK     = "EC2CSI-LOCAL-EFS OK"
	greetingDenied = "EC2CSI-LOCAL-EFS DENIED"
)

// MountTargetOptions configure StartMountTarget.
type MountTargetOptions struct {
	// Region and DNSSuffix name the file systems:
	// fs-X.efs.REGION.SUFFIX, the names the server certificate covers.
	// Region defaults to Region(), DNSSuffix to amazonaws.com.
	Region, DNSSuffix string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// MountTarget is the local backend's stand-in for the TLS side of an EFS
// mount target: a TLS listener on 127.0.0.1 with a certificate for
// *.efs.REGION.SUFFIX from a CA of its own, which reads the EFS extensions
// of the client certificate and accepts it only if its file system exists
// here and its access point belongs to that file system. It answers with
// one greeting line, in place of NFS.
//
// Its port is kept in the state directory and bound again on the next
// start, because the tunnels of published volumes were made to dial it.
type MountTarget struct {
	b      *Backend
	log    *slog.Logger
	ln     net.Listener
	caFile string
	suffix string // ".efs.REGION.SUFFIX"

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Region is the region of this machine's zone, as EC2 names zones after
// their region plus a letter (local-1a is in local-1).
func (b *Backend) Region() string {
	z := b.zone
	if n := len(z); n > 1 && z[n-1] >= 'a' && z[n-1] <= 'z' && z[n-2] >= '0' && z[n-2] <= '9' {
		return z[:n-1]
	}
	return z
}

// StartMountTarget makes (or reuses) the certificates, binds the port and
// serves until Close.
func (b *Backend) StartMountTarget(o MountTargetOptions) (*MountTarget, error) {
	if o.Region == "" {
		o.Region = b.Region()
	}
	if o.DNSSuffix == "" {
		o.DNSSuffix = "amazonaws.com"
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	dir := filepath.Join(b.dir, mountTargetDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local mount target: %w", err)
	}
	// One process at a time makes the CA and picks the port.
	unlock, err := lockFile(filepath.Join(dir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("local mount target: %w", err)
	}
	defer unlock()
	suffix := ".efs." + o.Region + "." + o.DNSSuffix
	cert, err := serverCertificate(dir, "*"+suffix)
	if err != nil {
		return nil, fmt.Errorf("local mount target: %w", err)
	}
	ln, err := listenMountTarget(dir)
	if err != nil {
		return nil, fmt.Errorf("local mount target: %w", err)
	}
	m := &MountTarget{
		b: b, log: log, caFile: filepath.Join(dir, caCertFile), suffix: suffix,
		conns: map[net.Conn]struct{}{},
	}
	m.ln = tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{cert},
		// EFS wants a client certificate but no chain: it is self-signed,
		// and what counts is in its extensions, checked after the
		// handshake so that a refusal can say why.
		ClientAuth: tls.RequireAnyClientCert,
		MinVersion: tls.VersionTLS12,
	})
	m.wg.Add(1)
	go m.serve()
	log.Info("local EFS mount target serving TLS", "address", m.Addr(), "names", "*"+suffix)
	return m, nil
}

// Addr is the mount target's host:port.
func (m *MountTarget) Addr() string { return m.ln.Addr().String() }

// CAFile is the PEM file of the CA its certificate chains to.
func (m *MountTarget) CAFile() string { return m.caFile }

// Close stops serving and cuts open connections.
func (m *MountTarget) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	err := m.ln.Close()
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	m.wg.Wait()
	return err
}

func (m *MountTarget) serve() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				m.log.Error("local mount target stopped accepting", "err", err)
			}
			return
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			c.Close()
			return
		}
		m.conns[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go m.handle(c.(*tls.Conn))
	}
}

func (m *MountTarget) handle(c *tls.Conn) {
	defer m.wg.Done()
	defer func() {
		m.mu.Lock()
		delete(m.conns, c)
		m.mu.Unlock()
		c.Close()
	}()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.Handshake(); err != nil {
		m.log.Warn("local mount target: TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	st := c.ConnectionState()
	fsID, apID, err := m.verify(st)
	if err != nil {
		m.log.Warn("local mount target: client certificate refused", "serverName", st.ServerName, "reason", err.Error())
		fmt.Fprintf(c, "%s %s\n", greetingDenied, err)
		return
	}
	fmt.Fprintln(c, strings.TrimSpace(greetingOK+" "+fsID+" "+apID))
}

// verify checks the client certificate the way a mount target does: it is
// validly self-signed and current, names a file system that exists here
// and is the one the connection asked for by name, and names no access
// point or one of that file system. An IAM signature, when present, is not
// checked: the local backend has no IAM.
func (m *MountTarget) verify(st tls.ConnectionState) (fsID, apID string, err error) {
	if len(st.PeerCertificates) == 0 {
		return "", "", errors.New("no client certificate")
	}
	leaf := st.PeerCertificates[0]
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		return "", "", fmt.Errorf("the client certificate's self-signature does not verify: %v", err)
	}
	if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return "", "", fmt.Errorf("the client certificate is valid from %s to %s, not now", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	for _, ext := range leaf.Extensions {
		var s string
		switch {
		case ext.Id.Equal(efscert.OIDFileSystem):
			if _, err := asn1.UnmarshalWithParams(ext.Value, &s, "utf8"); err != nil {
				return "", "", fmt.Errorf("the client certificate's file system extension is not a UTF8String: %v", err)
			}
			fsID = s
		case ext.Id.Equal(efscert.OIDAccessPoint):
			if _, err := asn1.UnmarshalWithParams(ext.Value, &s, "utf8"); err != nil {
				return "", "", fmt.Errorf("the client certificate's access point extension is not a UTF8String: %v", err)
			}
			apID = s
		}
	}
	if fsID == "" {
		return "", "", errors.New("the client certificate names no file system (extension 1.3.6.1.4.1.4843.7.3)")
	}
	if want := fsID + m.suffix; st.ServerName != want {
		return "", "", fmt.Errorf("the client certificate is for file system %s, but the connection is for %q", fsID, st.ServerName)
	}
	ctx := context.Background()
	if _, err := m.b.DescribeFileSystem(ctx, fsID); err != nil {
		return "", "", fmt.Errorf("file system %s does not exist", fsID)
	}
	if apID == "" {
		return fsID, "", nil
	}
	ap, err := m.b.DescribeAccessPoint(ctx, apID)
	if err != nil {
		return "", "", fmt.Errorf("access point %s does not exist", apID)
	}
	if ap.FileSystemID != fsID {
		return "", "", fmt.Errorf("access point %s belongs to file system %s, not %s", apID, ap.FileSystemID, fsID)
	}
	return fsID, apID, nil
}

// Probe connects to addr, a tunnel's local end in front of the local mount
// target, and reads the greeting. It returns nil when the mount target
// accepted the client certificate; a refusal wraps cloud.ErrUnauthorized
// and says why; a connection closed without a greeting means the TLS
// handshake failed, which the tunnel's log explains.
func Probe(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect: %w: %v", cloud.ErrUnavailable, err)
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(15 * time.Second)
	}
	c.SetDeadline(deadline)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("the connection closed before the mount target's greeting (%v): the TLS handshake with it failed, see the tunnel's log: %w", err, cloud.ErrUnavailable)
	}
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, greetingOK):
		return nil
	case strings.HasPrefix(line, greetingDenied):
		return fmt.Errorf("the mount target refused the client certificate: %s: %w", strings.TrimSpace(strings.TrimPrefix(line, greetingDenied)), cloud.ErrUnauthorized)
	}
	return fmt.Errorf("unexpected greeting %q: %w", line, cloud.ErrUnavailable)
}

// listenMountTarget binds the port recorded in dir, or the first free one
// of the range, which it then records.
func listenMountTarget(dir string) (net.Listener, error) {
	path := filepath.Join(dir, portFile)
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		port, perr := strconv.Atoi(strings.TrimSpace(string(raw)))
		if perr != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("%s holds %q, not a port", path, raw)
		}
		return rebind(port, path)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	for port := MountTargetPortMin; port <= MountTargetPortMax; port++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, []byte(strconv.Itoa(port)+"\n"), 0o600); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	}
	return nil, fmt.Errorf("no free port in %d-%d", MountTargetPortMin, MountTargetPortMax)
}

// rebind binds the recorded port, waiting a little for a previous process
// that is still exiting to let go of it.
func rebind(port int, recordedIn string) (net.Listener, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return nil, fmt.Errorf("bind %s, the port recorded in %s that published volumes' tunnels dial: %w", addr, recordedIn, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serverCertificate returns a fresh certificate for name, signed by the CA
// in dir, which is made on first use. The CA lasts ten years so that the
// tunnels, which read it once per process, keep trusting it; the server
// certificate is made anew at every start, so a changed region or suffix
// takes effect then.
func serverCertificate(dir, name string) (tls.Certificate, error) {
	ca, caKey, err := loadOrCreateCA(dir)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	// Written for people looking at the endpoint with openssl; the
	// process itself serves the certificate from memory.
	if err := writeFileAtomic(filepath.Join(dir, serverKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(filepath.Join(dir, serverCertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key}, nil
}

func loadOrCreateCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	if cerr == nil && kerr == nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("CA in %s: %w", dir, err)
		}
		key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if !ok {
			return nil, nil, fmt.Errorf("CA key %s: not an ECDSA key", keyPath)
		}
		ca, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, nil, fmt.Errorf("CA certificate %s: %w", certPath, err)
		}
		return ca, key, nil
	}
	if (cerr != nil && !errors.Is(cerr, fs.ErrNotExist)) || (kerr != nil && !errors.Is(kerr, fs.ErrNotExist)) {
		return nil, nil, fmt.Errorf("read CA in %s: %w", dir, errors.Join(cerr, kerr))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "ec2csi local EFS mount target CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	// The key first: a certificate without its key would be found and
	// fail to load, where a key alone is simply made again.
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n.Add(n, big.NewInt(1))
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so a crash never leaves a half-written key or certificate.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
