package tunnel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// SocketFile is the daemon's unix socket inside the state directory.
const SocketFile = "tunnel.sock"

// The daemon's API: small JSON over HTTP on a unix socket, so it can be
// poked with curl --unix-socket when a node misbehaves.
const (
	pathAcquire = "/v1/acquire"
	pathRelease = "/v1/release"
	pathReady   = "/v1/ready"
	pathTunnels = "/v1/tunnels"
)

type acquireRequest struct {
	Spec     Spec   `json:"spec"`
	MountKey string `json:"mountKey"`
}

type acquireResponse struct {
	Port int `json:"port"`
}

type releaseRequest struct {
	MountKey string `json:"mountKey"`
}

type errorResponse struct {
	Error    string `json:"error"`
	Conflict bool   `json:"conflict,omitempty"`
	NoPorts  bool   `json:"noPorts,omitempty"`
}

// Server serves a Manager to node plugins over a unix socket.
type Server struct {
	m    *Manager
	log  *slog.Logger
	http *http.Server
}

// NewServer returns a server for m.
func NewServer(m *Manager, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{m: m, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathAcquire, s.acquire)
	mux.HandleFunc("POST "+pathRelease, s.release)
	mux.HandleFunc("GET "+pathReady, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, struct{}{}) })
	mux.HandleFunc("GET "+pathTunnels, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, m.Tunnels()) })
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Listen binds the socket at path, replacing a stale one (the lock the
// Manager holds proves no other daemon uses it), readable by root only.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("tunnel daemon: socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tunnel daemon: remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("tunnel daemon: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("tunnel daemon: restrict socket: %w", err)
	}
	return ln, nil
}

// Serve answers on ln until ctx ends. Restore the Manager before calling
// it: a plugin that reaches the daemon may rely on every old port being
// bound.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.http.Shutdown(sctx)
			cancel()
		case <-done:
		}
	}()
	err := s.http.Serve(ln)
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) acquire(w http.ResponseWriter, r *http.Request) {
	var req acquireRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: "decode request: " + err.Error()})
		return
	}
	port, err := s.m.Acquire(r.Context(), req.Spec, req.MountKey)
	if err != nil {
		s.log.Warn("acquire tunnel", "fileSystem", req.Spec.FileSystemID, "mount", req.MountKey, "err", err)
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, acquireResponse{Port: port})
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	var req releaseRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: "decode request: " + err.Error()})
		return
	}
	if err := s.m.Release(r.Context(), req.MountKey); err != nil {
		s.log.Warn("release tunnel", "mount", req.MountKey, "err", err)
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func writeError(w http.ResponseWriter, err error) {
	resp := errorResponse{Error: err.Error()}
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrMountConflict):
		resp.Conflict, code = true, http.StatusConflict
	case errors.Is(err, ErrNoPorts):
		resp.NoPorts, code = true, http.StatusServiceUnavailable
	}
	writeJSON(w, code, resp)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// Client reaches a tunnel daemon; it is the node plugin's Acquirer when
// tunnels live outside the plugin.
type Client struct {
	http *http.Client
}

// NewClient returns a client for the daemon listening at socketPath.
func NewClient(socketPath string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{http: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// Acquire implements Acquirer.
func (c *Client) Acquire(ctx context.Context, spec Spec, mountKey string) (int, error) {
	var resp acquireResponse
	if err := c.call(ctx, http.MethodPost, pathAcquire, acquireRequest{Spec: spec, MountKey: mountKey}, &resp); err != nil {
		return 0, fmt.Errorf("tunnel daemon: acquire for %s: %w", mountKey, err)
	}
	return resp.Port, nil
}

// Release implements Acquirer.
func (c *Client) Release(ctx context.Context, mountKey string) error {
	if err := c.call(ctx, http.MethodPost, pathRelease, releaseRequest{MountKey: mountKey}, nil); err != nil {
		return fmt.Errorf("tunnel daemon: release %s: %w", mountKey, err)
	}
	return nil
}

// Restore implements Acquirer for a plugin whose tunnels live in the
// daemon: the daemon restores them itself before answering, so this only
// waits until it answers or ctx ends.
func (c *Client) Restore(ctx context.Context) error {
	delay := 50 * time.Millisecond
	for {
		err := c.call(ctx, http.MethodGet, pathReady, nil, nil)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tunnel daemon not ready: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// Tunnels lists the daemon's tunnels.
func (c *Client) Tunnels(ctx context.Context) ([]TunnelInfo, error) {
	var out []TunnelInfo
	if err := c.call(ctx, http.MethodGet, pathTunnels, nil, &out); err != nil {
		return nil, fmt.Errorf("tunnel daemon: list tunnels: %w", err)
	}
	return out, nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://tunnel-daemon"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e errorResponse
		json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
		msg := e.Error
		if msg == "" {
			msg = resp.Status
		}
		switch {
		case e.Conflict:
			return fmt.Errorf("%s: %w", msg, ErrMountConflict)
		case e.NoPorts:
			return fmt.Errorf("%s: %w", msg, ErrNoPorts)
		}
		return errors.New(msg)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

var _ Acquirer = (*Client)(nil)

// DaemonConfig configures RunDaemon.
type DaemonConfig struct {
	// Manager configures the tunnels; its Registerer is set by RunDaemon.
	Manager ManagerConfig
	// MetricsAddress, when set, serves /metrics there over HTTP.
	MetricsAddress string
	// Ready, when set, is closed once every old port is rebound and the
	// socket answers.
	Ready chan<- struct{}
}

// RunDaemon is the tunnel daemon: it takes the state directory, rebinds
// every recorded tunnel's port, and only then opens its socket, serving
// until ctx ends. Tunnels keep their records when it stops so that the next
// daemon restores them.
func RunDaemon(ctx context.Context, c DaemonConfig) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c.Manager.Registerer = reg
	if c.Manager.LockWait == 0 {
		// A replacement daemon may start while the old one still exits.
		c.Manager.LockWait = 2 * time.Minute
	}
	log := c.Manager.Logger
	if log == nil {
		log = slog.Default()
	}
	m, err := NewManager(c.Manager)
	if err != nil {
		return err
	}
	defer m.Close()
	start := time.Now()
	if err := m.Restore(ctx); err != nil {
		return err
	}
	log.Info("tunnel ports rebound", "tunnels", len(m.Tunnels()), "took", time.Since(start))
	if c.MetricsAddress != "" {
		mln, err := net.Listen("tcp", c.MetricsAddress)
		if err != nil {
			return fmt.Errorf("tunnel daemon: metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go ms.Serve(mln)
		defer ms.Close()
	}
	ln, err := Listen(filepath.Join(c.Manager.StateDir, SocketFile))
	if err != nil {
		return err
	}
	if c.Ready != nil {
		close(c.Ready)
	}
	log.Info("tunnel daemon serving", "socket", ln.Addr().String())
	return NewServer(m, log).Serve(ctx, ln)
}
