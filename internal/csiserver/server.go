// Package csiserver is the gRPC plumbing every ec2csi driver shares: the
// endpoint, one log line and one metric sample per call, per-volume
// serialization, the mapping of backend errors to gRPC codes, and the
// Identity service.
package csiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/keylock"
)

// Server is one driver's gRPC server.
type Server struct {
	driver  string
	log     *slog.Logger
	metrics *Metrics
	locks   keylock.Locks
	grpc    *grpc.Server
}

// New returns a server for the named driver ("efs" or "ebs"), which labels
// its logs and metrics. metrics may be nil.
func New(driver string, log *slog.Logger, metrics *Metrics) *Server {
	s := &Server{driver: driver, log: log.With("driver", driver), metrics: metrics}
	s.grpc = grpc.NewServer(grpc.UnaryInterceptor(s.intercept))
	return s
}

// Register adds the CSI services; node or controller may be nil.
func (s *Server) Register(identity csi.IdentityServer, controller csi.ControllerServer, node csi.NodeServer) {
	csi.RegisterIdentityServer(s.grpc, identity)
	if controller != nil {
		csi.RegisterControllerServer(s.grpc, controller)
	}
	if node != nil {
		csi.RegisterNodeServer(s.grpc, node)
	}
}

// Serve listens on endpoint (unix:///path or tcp://host:port) and serves
// until ctx ends, then stops gracefully.
func (s *Server) Serve(ctx context.Context, endpoint string) error {
	lis, err := Listen(endpoint)
	if err != nil {
		return err
	}
	return s.ServeListener(ctx, lis)
}

// ServeListener serves on an existing listener until ctx ends.
func (s *Server) ServeListener(ctx context.Context, lis net.Listener) error {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stopped := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(10 * time.Second):
				s.grpc.Stop()
			}
		case <-done:
		}
	}()
	defer close(done)
	if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve %s: %w", lis.Addr(), err)
	}
	return nil
}

// Listen opens a CSI endpoint. A unix socket file left by an earlier run is
// removed first, since the CO always dials the same path.
func Listen(endpoint string) (net.Listener, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if u.Host != "" { // unix://relative/path
			path = u.Host + u.Path
		}
		if path == "" {
			return nil, fmt.Errorf("endpoint %q: no socket path", endpoint)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("endpoint %q: %w", endpoint, err)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("endpoint %q: remove stale socket: %w", endpoint, err)
		}
		// The socket file appears only once it accepts connections: bound
		// under a temporary name and renamed, so a client that waits for
		// the file (kubelet, sidecars, tests) is never refused.
		tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
		os.Remove(tmp)
		lis, err := net.Listen("unix", tmp)
		if err != nil {
			return nil, fmt.Errorf("endpoint %q: %w", endpoint, err)
		}
		lis.(*net.UnixListener).SetUnlinkOnClose(false)
		if err := os.Rename(tmp, path); err != nil {
			lis.Close()
			os.Remove(tmp)
			return nil, fmt.Errorf("endpoint %q: %w", endpoint, err)
		}
		return unixListener{lis, path}, nil
	case "tcp":
		return net.Listen("tcp", u.Host)
	default:
		return nil, fmt.Errorf("endpoint %q: scheme must be unix:// or tcp://", endpoint)
	}
}

// unixListener removes its socket file when closed, under the name it was
// renamed to.
type unixListener struct {
	net.Listener
	path string
}

func (l unixListener) Close() error {
	err := l.Listener.Close()
	os.Remove(l.path)
	return err
}

// mutating lists the calls that change a volume; they run one at a time per
// volume. Read-only calls (stats, validation) are not serialized.
var mutating = map[string]bool{
	"CreateVolume": true, "DeleteVolume": true,
	"ControllerPublishVolume": true, "ControllerUnpublishVolume": true,
	"ControllerExpandVolume": true, "ControllerModifyVolume": true,
	"CreateSnapshot": true, "DeleteSnapshot": true,
	"NodeStageVolume": true, "NodeUnstageVolume": true,
	"NodePublishVolume": true, "NodeUnpublishVolume": true,
	"NodeExpandVolume": true,
}

// subject names what a request is about, for the log line and the lock.
func subject(req any) (key, value string) {
	switch r := req.(type) {
	case *csi.CreateVolumeRequest:
		return "volume_name", r.GetName()
	case *csi.CreateSnapshotRequest:
		return "snapshot_name", r.GetName()
	case *csi.DeleteSnapshotRequest:
		return "snapshot_id", r.GetSnapshotId()
	case interface{ GetVolumeId() string }:
		return "volume_id", r.GetVolumeId()
	}
	return "", ""
}

func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	start := time.Now()
	key, value := subject(req)

	resp, err := s.call(ctx, method, key, value, req, handler)
	err = Status(err)

	elapsed := time.Since(start)
	code := status.Code(err)
	if s.metrics != nil {
		s.metrics.observe(s.driver, method, code, elapsed)
	}
	level := slog.LevelInfo
	switch {
	case err != nil:
		level = slog.LevelWarn
	case method == "Probe" || strings.HasSuffix(method, "GetCapabilities") || method == "GetPluginInfo" || method == "NodeGetVolumeStats":
		// The CO polls these; at info level they would drown the log.
		level = slog.LevelDebug
	}
	attrs := []any{"method", method, "duration_ms", float64(elapsed.Microseconds()) / 1000, "code", code.String()}
	if key != "" {
		attrs = append(attrs, key, value)
	}
	if err != nil {
		attrs = append(attrs, "error", status.Convert(err).Message())
	}
	s.log.Log(ctx, level, "csi call", attrs...)
	return resp, err
}

func (s *Server) call(ctx context.Context, method, key, value string, req any, handler grpc.UnaryHandler) (any, error) {
	if mutating[method] && value != "" {
		unlock, err := s.locks.Lock(ctx, key+"/"+value)
		if err != nil {
			return nil, status.Errorf(codes.Aborted, "another operation on %s %s is still running: %v", key, value, err)
		}
		defer unlock()
	}
	return handler(ctx, req)
}

// Metrics counts and times CSI calls, labelled by driver, method and code.
type Metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the CSI call metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ec2csi_csi_calls_total",
			Help: "CSI calls served, by driver, method and gRPC code.",
		}, []string{"driver", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ec2csi_csi_call_duration_seconds",
			Help:    "Latency of CSI calls, by driver and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14), // 0.5 ms .. ~75 s
		}, []string{"driver", "method"}),
	}
	reg.MustRegister(m.calls, m.duration)
	return m
}

func (m *Metrics) observe(driver, method string, code codes.Code, d time.Duration) {
	m.calls.WithLabelValues(driver, method, code.String()).Inc()
	m.duration.WithLabelValues(driver, method).Observe(d.Seconds())
}
