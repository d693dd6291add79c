package tunnel

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/ec2csi/ec2csi/internal/efscert"
	"github.com/ec2csi/ec2csi/internal/store"
)

// Buckets of the state database that the Manager owns.
const (
	bucketTunnels = "tunnel-tunnels" // Spec.Key() -> record
	bucketMounts  = "tunnel-mounts"  // mount key -> mountRecord
)

// Default local port range, below Linux's ephemeral range so outgoing
// connections never take a tunnel's port while it is being rebound.
const (
	DefaultPortMin = 20049
	DefaultPortMax = 21049
)

// LockFile is the file in the state directory that one Manager holds
// locked for as long as it runs.
const LockFile = "tunnel.lock"

type record struct {
	Spec   Spec     `json:"spec"`
	Port   int      `json:"port"`
	Mounts []string `json:"mounts"`
	// BootID tells records of this boot from ones a reboot orphaned: no
	// NFS mount survives a reboot, so neither does its tunnel.
	BootID  string    `json:"bootID"`
	Created time.Time `json:"created"`
}

type mountRecord struct {
	Key string `json:"key"`
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// StateDir holds the lock file and the node key. Required. Put it on
	// a tmpfs such as /run when possible.
	StateDir string
	// DB is the state database; nil opens StateDir/state.db.
	DB *store.DB
	// PortMin..PortMax (inclusive) is the local port range; zero values
	// mean DefaultPortMin..DefaultPortMax.
	PortMin, PortMax int
	// ListenHost is where tunnels listen; default 127.0.0.1.
	ListenHost string
	// Credentials sign the certificates of IAM tunnels.
	Credentials aws.CredentialsProvider
	// ClientInfo goes into every certificate when set.
	ClientInfo *efscert.ClientInfo
	// Key overrides the node key in StateDir (tests).
	Key *rsa.PrivateKey
	// Registerer receives the tunnel metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Mover carries bytes; nil means UserspaceMover.
	Mover Mover
	// LockWait is how long NewManager waits for another process to give
	// up the state directory (a daemon being replaced); zero fails at once.
	LockWait time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Manager runs tunnels in this process: one per distinct Spec, shared by
// reference-counted mount keys, on ports from a range, with its state in
// the store so a restarted process restores them on the same ports.
type Manager struct {
	cfg     ManagerConfig
	db      *store.DB
	lock    *os.File
	metrics *Metrics
	log     *slog.Logger
	bootID  string

	mu       sync.Mutex
	restored bool
	closed   bool
	key      *rsa.PrivateKey
	tunnels  map[string]*entry // by Spec.Key()
	ports    map[int]string
	mounts   map[string]string // mount key -> Spec.Key()
	next     int
	roots    map[string]*x509.CertPool
	stop     chan struct{}
	bg       sync.WaitGroup
}

type entry struct {
	rec record
	tun *Tunnel // nil while its port could not be bound
}

// NewManager takes the state directory's lock and returns a Manager that
// has restored nothing yet: call Restore first.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("tunnel manager: no state directory")
	}
	if cfg.PortMin == 0 && cfg.PortMax == 0 {
		cfg.PortMin, cfg.PortMax = DefaultPortMin, DefaultPortMax
	}
	if cfg.PortMin < 1 || cfg.PortMax > 65535 || cfg.PortMin > cfg.PortMax {
		return nil, fmt.Errorf("tunnel manager: bad port range %d-%d", cfg.PortMin, cfg.PortMax)
	}
	if cfg.ListenHost == "" {
		cfg.ListenHost = "127.0.0.1"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("tunnel manager: create state directory: %w", err)
	}
	lock, err := lockDir(cfg.StateDir, cfg.LockWait)
	if err != nil {
		return nil, err
	}
	db := cfg.DB
	if db == nil {
		if db, err = store.Open(filepath.Join(cfg.StateDir, "state.db")); err != nil {
			lock.Close()
			return nil, fmt.Errorf("tunnel manager: %w", err)
		}
	}
	metrics, err := NewMetrics(cfg.Registerer)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("tunnel manager: register metrics: %w", err)
	}
	return &Manager{
		cfg:     cfg,
		db:      db,
		lock:    lock,
		metrics: metrics,
		log:     log,
		bootID:  readBootID(),
		key:     cfg.Key,
		tunnels: map[string]*entry{},
		ports:   map[int]string{},
		mounts:  map[string]string{},
		next:    cfg.PortMin,
		roots:   map[string]*x509.CertPool{},
		stop:    make(chan struct{}),
	}, nil
}

// lockDir makes sure one Manager at a time owns the tunnels of a state
// directory; the kernel drops the lock when its process dies, however it
// dies.
func lockDir(dir string, wait time.Duration) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tunnel manager: open lock %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("tunnel manager: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("tunnel manager: another process owns the tunnels of %s", dir)
		}
		// Polled rather than blocking so the wait is bounded; the old
		// owner's exit frees the lock within one poll.
		time.Sleep(20 * time.Millisecond)
	}
}

func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Restore implements Acquirer: it binds the port of every tunnel recorded
// in this boot before returning, so the caller can start serving knowing
// every kernel NFS reconnect finds its port. A port that cannot be bound
// yet (say, the previous process is still exiting) is retried in the
// background. Later calls do nothing.
func (m *Manager) Restore(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restoreLocked(ctx)
}

func (m *Manager) restoreLocked(context.Context) error {
	if m.closed {
		return errors.New("tunnel manager closed")
	}
	if m.restored {
		return nil
	}
	var recs []record
	var stale []record
	err := m.db.View(func(tx *bolt.Tx) error {
		return store.List(tx, bucketTunnels, "", func(_ string, r record) error {
			if r.BootID != m.bootID {
				stale = append(stale, r)
			} else {
				recs = append(recs, r)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("tunnel manager: read tunnels: %w", err)
	}
	if len(stale) > 0 {
		err := m.db.Update(func(tx *bolt.Tx) error {
			for _, r := range stale {
				if err := store.Delete(tx, bucketTunnels, r.Spec.Key()); err != nil {
					return err
				}
				for _, mk := range r.Mounts {
					if err := store.Delete(tx, bucketMounts, mk); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("tunnel manager: drop tunnels of an earlier boot: %w", err)
		}
		m.log.Info("dropped tunnels recorded before a reboot", "count", len(stale))
	}
	// Bind every port first, start serving after: a kernel reconnect that
	// lands between the two waits in the accept queue instead of being
	// refused.
	type bound struct {
		e  *entry
		ln net.Listener
	}
	var ready []bound
	for _, r := range recs {
		key := r.Spec.Key()
		e := &entry{rec: r}
		m.tunnels[key] = e
		m.ports[r.Port] = key
		for _, mk := range r.Mounts {
			m.mounts[mk] = key
		}
		ln, err := m.listen(r.Port)
		if err != nil {
			m.log.Error("rebind tunnel port; retrying in the background", "port", r.Port, "fileSystem", r.Spec.FileSystemID, "err", err)
			m.bg.Add(1)
			go m.rebindLater(key, r.Port)
			continue
		}
		ready = append(ready, bound{e, ln})
	}
	for _, b := range ready {
		if err := m.start(b.e, b.ln); err != nil {
			// Say, its CA bundle is unreadable for now. The port stays
			// reserved for it and the start is retried.
			m.log.Error("restore tunnel; retrying in the background", "port", b.e.rec.Port, "fileSystem", b.e.rec.Spec.FileSystemID, "err", err)
			m.bg.Add(1)
			go m.rebindLater(b.e.rec.Spec.Key(), b.e.rec.Port)
		}
	}
	m.restored = true
	if len(recs) > 0 {
		m.log.Info("restored tunnels", "count", len(recs), "bound", len(ready))
	}
	return nil
}

// rebindLater keeps trying to bind and start a restored tunnel until it
// works or the tunnel is released.
func (m *Manager) rebindLater(key string, port int) {
	defer m.bg.Done()
	delay := 100 * time.Millisecond
	for {
		select {
		case <-m.stop:
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
		m.mu.Lock()
		e, ok := m.tunnels[key]
		if !ok || e.tun != nil || e.rec.Port != port || m.closed {
			m.mu.Unlock()
			return
		}
		ln, err := m.listen(port)
		if err == nil {
			err = m.start(e, ln)
		}
		m.mu.Unlock()
		if err == nil {
			m.log.Info("rebound tunnel port", "port", port)
			return
		}
	}
}

func (m *Manager) listen(port int) (net.Listener, error) {
	// Go sets SO_REUSEADDR on listeners, so the previous process's
	// connections in TIME_WAIT do not block the rebind.
	return net.Listen("tcp", net.JoinHostPort(m.cfg.ListenHost, strconv.Itoa(port)))
}

// start makes e's tunnel and serves it on ln.
func (m *Manager) start(e *entry, ln net.Listener) error {
	tun, err := m.newTunnel(e.rec.Spec, e.rec.Port)
	if err != nil {
		ln.Close()
		return err
	}
	e.tun = tun
	tun.Start(ln)
	return nil
}

func (m *Manager) newTunnel(spec Spec, port int) (*Tunnel, error) {
	if m.key == nil {
		key, err := efscert.LoadOrCreateKey(m.cfg.StateDir)
		if err != nil {
			return nil, err
		}
		m.key = key
	}
	roots, ok := m.roots[spec.CAFile]
	if !ok {
		var err error
		if roots, err = LoadRoots(spec.CAFile); err != nil {
			return nil, err
		}
		m.roots[spec.CAFile] = roots
	}
	ic := efscert.IssuerConfig{
		Key: m.key,
		Request: efscert.Request{
			FileSystemID:  spec.FileSystemID,
			AccessPointID: spec.AccessPointID,
			Region:        spec.region(),
			ClientInfo:    m.cfg.ClientInfo,
		},
		Logger: m.log,
	}
	if spec.IAM {
		if m.cfg.Credentials == nil {
			return nil, errors.New("tunnel: IAM authorization asked for but no AWS credentials are configured")
		}
		ic.Credentials = m.cfg.Credentials
	}
	issuer, err := efscert.NewIssuer(ic)
	if err != nil {
		return nil, err
	}
	return New(Config{
		Target:       spec.Target,
		TLS:          ClientTLSConfig(spec.ServerName, roots, issuer.GetClientCertificate),
		Metrics:      m.metrics,
		Port:         port,
		FileSystemID: spec.FileSystemID,
		Mover:        m.cfg.Mover,
		Logger:       m.log,
	})
}

// Acquire implements Acquirer.
func (m *Manager) Acquire(ctx context.Context, spec Spec, mountKey string) (int, error) {
	if err := spec.Validate(); err != nil {
		return 0, err
	}
	if mountKey == "" {
		return 0, errors.New("tunnel: empty mount key")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.restoreLocked(ctx); err != nil {
		return 0, err
	}
	key := spec.Key()
	if k, ok := m.mounts[mountKey]; ok {
		if k != key {
			return 0, fmt.Errorf("tunnel: mount %s: %w", mountKey, ErrMountConflict)
		}
		return m.tunnels[k].rec.Port, nil
	}
	if e, ok := m.tunnels[key]; ok {
		rec := e.rec
		rec.Mounts = append(slices.Clone(rec.Mounts), mountKey)
		slices.Sort(rec.Mounts)
		if err := m.save(rec, mountKey, ""); err != nil {
			return 0, err
		}
		e.rec = rec
		m.mounts[mountKey] = key
		return rec.Port, nil
	}

	// A new tunnel: everything that can fail on the spec happens before a
	// port is taken or anything is written.
	ln, port, err := m.bindFree()
	if err != nil {
		return 0, err
	}
	rec := record{Spec: spec, Port: port, Mounts: []string{mountKey}, BootID: m.bootID, Created: time.Now().UTC()}
	e := &entry{rec: rec}
	if err := m.start(e, ln); err != nil {
		return 0, err
	}
	if err := m.save(rec, mountKey, ""); err != nil {
		e.tun.Close()
		return 0, err
	}
	m.tunnels[key] = e
	m.ports[port] = key
	m.mounts[mountKey] = key
	m.log.Info("opened tunnel", "port", port, "fileSystem", spec.FileSystemID, "accessPoint", spec.AccessPointID,
		"iam", spec.IAM, "target", spec.Target, "mount", mountKey)
	return port, nil
}

// save writes rec and indexes addMount or drops dropMount, in one
// transaction.
func (m *Manager) save(rec record, addMount, dropMount string) error {
	err := m.db.Update(func(tx *bolt.Tx) error {
		if err := store.Put(tx, bucketTunnels, rec.Spec.Key(), rec); err != nil {
			return err
		}
		if addMount != "" {
			if err := store.Put(tx, bucketMounts, addMount, mountRecord{Key: rec.Spec.Key()}); err != nil {
				return err
			}
		}
		if dropMount != "" {
			return store.Delete(tx, bucketMounts, dropMount)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tunnel manager: save tunnel on port %d: %w", rec.Port, err)
	}
	return nil
}

// bindFree binds the next free port of the range, going round from where
// the last allocation stopped: a port just given up is the last to be
// handed out again, so a lazily unmounted NFS client still reconnecting to
// it is unlikely to land on someone else's file system.
func (m *Manager) bindFree() (net.Listener, int, error) {
	size := m.cfg.PortMax - m.cfg.PortMin + 1
	for i := range size {
		port := m.cfg.PortMin + (m.next-m.cfg.PortMin+i)%size
		if _, taken := m.ports[port]; taken {
			continue
		}
		ln, err := m.listen(port)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EACCES) {
				continue
			}
			return nil, 0, fmt.Errorf("tunnel: bind port %d: %w", port, err)
		}
		m.next = port + 1
		if m.next > m.cfg.PortMax {
			m.next = m.cfg.PortMin
		}
		return ln, port, nil
	}
	return nil, 0, fmt.Errorf("tunnel: %w %d-%d", ErrNoPorts, m.cfg.PortMin, m.cfg.PortMax)
}

// Release implements Acquirer.
func (m *Manager) Release(ctx context.Context, mountKey string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.restoreLocked(ctx); err != nil {
		return err
	}
	key, ok := m.mounts[mountKey]
	if !ok {
		return nil
	}
	e := m.tunnels[key]
	rec := e.rec
	rec.Mounts = slices.DeleteFunc(slices.Clone(rec.Mounts), func(s string) bool { return s == mountKey })
	if len(rec.Mounts) > 0 {
		if err := m.save(rec, "", mountKey); err != nil {
			return err
		}
		e.rec = rec
		delete(m.mounts, mountKey)
		return nil
	}
	err := m.db.Update(func(tx *bolt.Tx) error {
		if err := store.Delete(tx, bucketTunnels, key); err != nil {
			return err
		}
		return store.Delete(tx, bucketMounts, mountKey)
	})
	if err != nil {
		return fmt.Errorf("tunnel manager: delete tunnel on port %d: %w", rec.Port, err)
	}
	delete(m.mounts, mountKey)
	delete(m.tunnels, key)
	delete(m.ports, rec.Port)
	if e.tun != nil {
		e.tun.Close()
	}
	m.log.Info("closed tunnel", "port", rec.Port, "fileSystem", rec.Spec.FileSystemID, "lastMount", mountKey)
	return nil
}

// TunnelInfo describes one tunnel for status output.
type TunnelInfo struct {
	Spec        Spec     `json:"spec"`
	Port        int      `json:"port"`
	Mounts      []string `json:"mounts"`
	Bound       bool     `json:"bound"`
	Connections int      `json:"connections"`
}

// Tunnels lists the tunnels, ordered by port.
func (m *Manager) Tunnels() []TunnelInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]TunnelInfo, 0, len(m.tunnels))
	for _, e := range m.tunnels {
		ti := TunnelInfo{Spec: e.rec.Spec, Port: e.rec.Port, Mounts: slices.Clone(e.rec.Mounts), Bound: e.tun != nil}
		if e.tun != nil {
			ti.Connections = e.tun.ActiveConnections()
		}
		out = append(out, ti)
	}
	slices.SortFunc(out, func(a, b TunnelInfo) int { return a.Port - b.Port })
	return out
}

// Close stops every tunnel of this process without forgetting them: the
// next process restores them. It releases the state directory's lock.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.stop)
	tuns := make([]*Tunnel, 0, len(m.tunnels))
	for _, e := range m.tunnels {
		if e.tun != nil {
			tuns = append(tuns, e.tun)
		}
	}
	m.mu.Unlock()
	for _, t := range tuns {
		t.Close()
	}
	m.bg.Wait()
	return m.lock.Close()
}

var _ Acquirer = (*Manager)(nil)
