package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/ec2csi/ec2csi/internal/cloud/local"
	"github.com/ec2csi/ec2csi/internal/csiserver"
	"github.com/ec2csi/ec2csi/internal/ebs"
	"github.com/ec2csi/ec2csi/internal/efs"
	"github.com/ec2csi/ec2csi/internal/kubeletplugin"
	"github.com/ec2csi/ec2csi/internal/mounter"
	"github.com/ec2csi/ec2csi/internal/publications"
	"github.com/ec2csi/ec2csi/internal/store"
	"github.com/ec2csi/ec2csi/internal/version"
)

// Plugin is an assembled ec2csi process, ready to serve.
type Plugin struct {
	cfg      Config
	registry *prometheus.Registry
	servers  map[string]*csiserver.Server
	ready    []func(context.Context) error
	// closers stop what the plugin runs besides its servers (tunnels, the
	// local mount target), last started first stopped.
	closers []func() error
}

// New builds the drivers cfg asks for. Close the Plugin when done with it.
func New(ctx context.Context, cfg Config) (_ *Plugin, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	p := &Plugin{cfg: cfg, registry: prometheus.NewRegistry(), servers: map[string]*csiserver.Server{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Close())
		}
	}()
	cfg.registerer = p.registry
	p.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := csiserver.NewMetrics(p.registry)

	// One state database per process: the local backend keeps its
	// metadata there, and the node its publications whatever the backend.
	db, err := store.Open(filepath.Join(cfg.StateDir, "state.db"))
	if err != nil {
		return nil, err
	}
	var be backend
	switch cfg.Cloud {
	case CloudAWS:
		if be, err = newAWSBackend(ctx, cfg); err != nil {
			return nil, err
		}
	default:
		b, err := local.Open(ctx, cfg.StateDir, local.Options{Zone: cfg.Zone, DB: db})
		if err != nil {
			return nil, err
		}
		lb := localBackend{Backend: b}
		if cfg.efsNode() {
			if lb.efsSource, err = newLocalEFSNodeSource(ctx, cfg, b); err != nil {
				return nil, err
			}
		}
		be = lb
	}
	if cfg.efsNode() {
		// The EFS node's mount source may run tunnels and a mount target.
		if c, ok := be.EFSSource().(io.Closer); ok {
			p.closers = append(p.closers, c.Close)
		}
	}
	p.ready = append(p.ready, be.Ready)

	for _, d := range cfg.Drivers {
		srv := csiserver.New(d, cfg.Log, metrics)
		identity := &csiserver.Identity{Name: cfg.Names[d], Version: version.Get(), ControllerService: cfg.controller(), Ready: be.Ready}
		var controller csi.ControllerServer = csiserver.NoController{}
		var node csi.NodeServer
		switch d {
		case DriverEFS:
			opts := efs.Options{Name: cfg.Names[d], Version: version.Get(), NodeID: cfg.NodeID, DeleteAccessPointRootDir: cfg.DeleteAccessPointRootDir}
			if cfg.controller() {
				c, files := be.EFS()
				controller = efs.NewController(opts, c, files)
			}
			if cfg.node() {
				node = efs.NewNode(opts, be.EFSSource(), mounter.New(), publications.New(db, d))
			}
		case DriverEBS:
			opts := ebs.Options{Name: cfg.Names[d], Version: version.Get(), NodeID: cfg.NodeID, Zone: be.DefaultZone()}
			identity.Extra = []*csi.PluginCapability{
				{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS}}},
				{Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{Type: csi.PluginCapability_VolumeExpansion_ONLINE}}},
			}
			if cfg.controller() {
				controller = ebs.NewController(opts, be.EBS())
			}
			if cfg.node() {
				zone, limit, devices, err := be.EBSNode(ctx, cfg.NodeID, cfg.AttachLimit)
				if err != nil {
					return nil, err
				}
				opts.Zone, opts.AttachLimit = zone, limit
				node = ebs.NewNode(opts, devices, mounter.New(), publications.New(db, d))
			}
		}
		srv.Register(identity, controller, node)
		p.servers[d] = srv
	}
	return p, nil
}

// Close stops what New started besides the servers: EFS TLS tunnels run in
// this process (their records stay, so the next process restores them on
// the same ports) and the local backend's mount target. Calling it again
// does nothing.
func (p *Plugin) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	p.closers = nil
	return errors.Join(errs...)
}

// Registry is where the plugin's metrics live.
func (p *Plugin) Registry() *prometheus.Registry { return p.registry }

// Run serves every driver's endpoint, and the metrics endpoint when one is
// configured, until ctx ends or one of them fails.
func (p *Plugin) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for d, srv := range p.servers {
		// Listen before registering with the kubelet, which connects to
		// the endpoint as soon as it learns it.
		endpoint := p.cfg.Endpoints[d]
		lis, err := csiserver.Listen(endpoint)
		if err != nil {
			return err
		}
		p.cfg.Log.Info("serving CSI", "driver", d, "endpoint", endpoint)
		g.Go(func() error { return srv.ServeListener(ctx, lis) })
		if p.cfg.KubeletRegistrationDir != "" && p.cfg.node() {
			reg := kubeletplugin.Registration{
				Dir: p.cfg.KubeletRegistrationDir, DriverName: p.cfg.Names[d],
				Endpoint: strings.TrimPrefix(endpoint, "unix://"), Log: p.cfg.Log,
			}
			g.Go(func() error { return reg.Serve(ctx) })
		}
	}
	if p.cfg.MetricsAddress != "" {
		lis, err := net.Listen("tcp", p.cfg.MetricsAddress)
		if err != nil {
			return fmt.Errorf("--metrics-address %s: %w", p.cfg.MetricsAddress, err)
		}
		g.Go(func() error { return p.serveHTTP(ctx, lis) })
	}
	return g.Wait()
}

// serveHTTP serves /metrics and /healthz. Health answers 200 only while
// every backend is usable, so a liveness probe needs no sidecar.
func (p *Plugin) serveHTTP(ctx context.Context, lis net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		for _, ready := range p.ready {
			if err := ready(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	p.cfg.Log.Info("serving metrics and health", "address", lis.Addr().String())
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics endpoint: %w", err)
	}
	return nil
}
