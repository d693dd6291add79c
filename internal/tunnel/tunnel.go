// Package tunnel carries EFS's NFS traffic over TLS in process: a tunnel
// listens on a loopback port that the kernel NFS client mounts, and carries
// each connection to the file system's mount target over TLS with the EFS
// client certificate. A Manager shares one tunnel among all mounts of the
// same file system, access point and identity, persists which port each
// tunnel owns, and rebinds those ports after a restart so the kernel's
// reconnects find them again.
package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// dialTimeout bounds one TCP connect to the mount target.
	dialTimeout = 5 * time.Second
	// handshakeTimeout bounds one TLS handshake, certificate signing
	// included.
	handshakeTimeout = 15 * time.Second
	// dialAttempts is how often one accepted connection tries upstream
	// before giving up on it; the NFS client then reconnects by itself.
	dialAttempts = 3
	// keepAlive settings notice a mount target that vanished while the
	// connection was idle within about 35 s, well inside NFS's timeo=600.
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 5 * time.Second
	keepAliveCount    = 4
	// userTimeout notices a dead peer while data is unacknowledged, where
	// keepalive does not apply.
	userTimeout = 30 * time.Second
)

// Config configures one tunnel.
type Config struct {
	// Target is the mount target, "host:port".
	Target string
	// TLS is the client configuration: ServerName, roots, client
	// certificate. Build it with ClientTLSConfig.
	TLS *tls.Config
	// Metrics, when set, receives this tunnel's series under Port and
	// FileSystemID labels.
	Metrics      *Metrics
	Port         int
	FileSystemID string
	// Mover carries the bytes; nil means the user-space copier.
	Mover Mover
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Tunnel accepts local plaintext connections and carries each one to the
// target over its own TLS connection: one upstream connection per client
// connection, as stunnel does, so the NFS client's own reconnect logic
// stays in charge of its sessions.
type Tunnel struct {
	target string
	tls    *tls.Config
	dialer net.Dialer
	mover  Mover
	m      *tunnelMetrics
	log    *slog.Logger

	// ctx ends with Close, so dials in progress stop at once.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup

	dialed atomic.Bool
}

// New returns a tunnel that serves nothing until Serve.
func New(c Config) (*Tunnel, error) {
	if c.Target == "" {
		return nil, errors.New("tunnel: no target")
	}
	if _, _, err := net.SplitHostPort(c.Target); err != nil {
		return nil, fmt.Errorf("tunnel: target %q: %w", c.Target, err)
	}
	if c.TLS == nil || c.TLS.ServerName == "" {
		return nil, errors.New("tunnel: TLS configuration with a server name required")
	}
	t := &Tunnel{
		target: c.Target,
		tls:    c.TLS,
		mover:  c.Mover,
		log:    c.Logger,
		conns:  map[net.Conn]struct{}{},
	}
	if t.mover == nil {
		t.mover = UserspaceMover{}
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	if t.log == nil {
		t.log = slog.Default()
	}
	t.log = t.log.With("port", c.Port, "target", c.Target, "fileSystem", c.FileSystemID)
	metrics := c.Metrics
	if metrics == nil {
		var err error
		if metrics, err = NewMetrics(nil); err != nil {
			return nil, err
		}
	}
	t.m = metrics.forTunnel(fmt.Sprint(c.Port), c.FileSystemID)
	t.dialer = net.Dialer{
		Timeout: dialTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount,
		},
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(userTimeout/time.Millisecond))
			})
			if err != nil {
				return err
			}
			return os.NewSyscallError("setsockopt TCP_USER_TIMEOUT", serr)
		},
	}
	return t, nil
}

// Serve accepts connections on ln until ln fails or the tunnel is closed;
// it then returns nil if the tunnel was closed. The tunnel owns ln.
func (t *Tunnel) Serve(ln net.Listener) error {
	if !t.attach(ln) {
		return nil
	}
	return t.acceptLoop(ln)
}

// Start is Serve in the background. The tunnel owns ln from the moment
// Start returns, so a Close right after it closes ln before returning: the
// port is free again as soon as Close is done.
func (t *Tunnel) Start(ln net.Listener) {
	if !t.attach(ln) {
		return
	}
	go func() {
		if err := t.acceptLoop(ln); err != nil {
			t.log.Error("tunnel stopped accepting", "err", err)
		}
	}()
}

func (t *Tunnel) attach(ln net.Listener) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.ln != nil {
		ln.Close()
		return false
	}
	t.ln = ln
	t.wg.Add(1)
	return true
}

func (t *Tunnel) acceptLoop(ln net.Listener) error {
	defer t.wg.Done()
	t.m.parent.tunnels.Inc()
	defer t.m.parent.tunnels.Dec()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if t.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				// Out of descriptors or memory: wait instead of spinning,
				// the listener stays bound so no client sees a refusal.
				t.m.acceptErr.Inc()
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				t.log.Warn("accept", "err", err, "retryIn", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("tunnel on port %s: accept: %w", t.m.port, err)
		}
		backoff = 0
		if !t.track(c) {
			c.Close()
			return nil
		}
		t.wg.Add(1)
		go t.handle(c)
	}
}

func (t *Tunnel) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

func (t *Tunnel) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Tunnel) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// Close stops accepting, cuts every carried connection and waits for their
// goroutines. It is for a tunnel no mount uses any more.
func (t *Tunnel) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.wg.Wait()
		return nil
	}
	t.closed = true
	t.cancel()
	var err error
	if t.ln != nil {
		err = t.ln.Close()
	}
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	t.m.drop()
	return err
}

// ActiveConnections is how many client connections are being carried.
func (t *Tunnel) ActiveConnections() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

func (t *Tunnel) handle(c net.Conn) {
	defer t.wg.Done()
	defer t.untrack(c)
	defer c.Close()
	local, ok := c.(*net.TCPConn)
	if !ok {
		t.log.Error("accepted a non-TCP connection", "type", fmt.Sprintf("%T", c))
		return
	}
	t.m.accepted.Inc()
	t.m.active.Inc()
	defer t.m.active.Dec()

	up, err := t.dial()
	if err != nil {
		// Closing the client connection makes the NFS client reconnect,
		// which brings another dial.
		t.log.Warn("no upstream connection", "err", err)
		return
	}
	// Registered so Close can cut it too: the TCP connection, since closing
	// the TLS one would try to send an alert.
	if !t.track(up.TCP) {
		up.TCP.Close()
		return
	}
	defer t.untrack(up.TCP)
	t.pipe(local, up)
}

// dial connects and handshakes, trying a few times: a mount target that
// just failed over, or a DNS name that now resolves elsewhere, usually
// answers the next try.
func (t *Tunnel) dial() (*Upstream, error) {
	var lastErr error
	for attempt := range dialAttempts {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt*attempt) * 200 * time.Millisecond):
			case <-t.ctx.Done():
				return nil, errors.New("tunnel closed")
			}
		}
		if t.dialed.Swap(true) {
			t.m.redials.Inc()
		}
		up, err := dialUpstream(t.ctx, &t.dialer, t.target, t.tls)
		if err == nil {
			return up, nil
		}
		lastErr = err
		if t.ctx.Err() != nil {
			return nil, err
		}
		if errors.Is(err, errHandshakeFailed) {
			t.m.handshakeErr.Inc()
		} else {
			t.m.dialErr.Inc()
		}
		t.log.Debug("upstream attempt failed", "attempt", attempt+1, "err", err)
	}
	return nil, lastErr
}

var errHandshakeFailed = errors.New("TLS handshake failed")

// Upstream is a TLS connection to the mount target and the TCP connection
// it runs over.
type Upstream struct {
	TLS *tls.Conn
	TCP *net.TCPConn
	raw *rawConn
}

func dialUpstream(parent context.Context, d *net.Dialer, target string, conf *tls.Config) (*Upstream, error) {
	ctx, cancel := context.WithTimeout(parent, handshakeTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", target, err)
	}
	tcp := c.(*net.TCPConn)
	raw := newRawConn(tcp)
	tc := tls.Client(raw, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		tcp.Close()
		return nil, fmt.Errorf("%w with %s: %w", errHandshakeFailed, target, err)
	}
	return &Upstream{TLS: tc, TCP: tcp, raw: raw}, nil
}

// pipe carries both directions until both have ended. A direction that ends
// cleanly is passed on as a half-close; one that fails cuts both, which
// also unblocks the other.
func (t *Tunnel) pipe(local *net.TCPConn, up *Upstream) {
	var once sync.Once
	abort := func(err error) {
		once.Do(func() {
			if !t.isClosed() && !isBenignClose(err) {
				t.m.ioErr.Inc()
				t.log.Debug("connection cut", "err", err)
			}
			local.Close()
			up.TCP.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := t.mover.ToServer(up, local, t.m.toServer.Add); err != nil {
			abort(err)
			return
		}
		// close_notify, then FIN, as an orderly TLS client would.
		if err := up.TLS.CloseWrite(); err != nil {
			abort(err)
			return
		}
		if err := up.TCP.CloseWrite(); err != nil {
			abort(err)
		}
	}()
	if err := t.mover.FromServer(local, up, t.m.fromServer.Add); err != nil {
		abort(err)
	} else if err := local.CloseWrite(); err != nil {
		abort(err)
	}
	<-done
	up.TCP.Close()
}

// isBenignClose tells the ordinary ends of a connection (a peer reset, our
// own close) from errors worth counting.
func isBenignClose(err error) bool {
	return err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// ClientTLSConfig is the upstream TLS configuration: TLS 1.2 or newer, the
// server's chain checked against roots (nil: the system's) and its name
// against serverName, and the client certificate from getCert (nil: none).
func ClientTLSConfig(serverName string, roots *x509.CertPool, getCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		ServerName:           serverName,
		RootCAs:              roots,
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: getCert,
		// Full-size records from the first byte: NFS moves bulk data, and
		// each record costs a header, a tag and a write.
		DynamicRecordSizingDisabled: true,
		// The TLS 1.2 renegotiation stunnel is told to refuse.
		Renegotiation: tls.RenegotiateNever,
	}
}

// LoadRoots returns the system roots plus the PEM certificates in caFile
// (if not empty). The pool is read-only afterwards and can be shared.
func LoadRoots(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", caFile)
	}
	return pool, nil
}
