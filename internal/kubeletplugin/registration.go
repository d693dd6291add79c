// Package kubeletplugin registers a CSI driver with the kubelet through the
// kubelet's plugin registration API, so that the node plugin needs no
// node-driver-registrar sidecar: it puts a registration socket in the
// kubelet's plugins_registry directory, the kubelet finds it, asks for the
// driver's name and CSI endpoint, and reports back whether it registered.
package kubeletplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// DefaultRegistrationDir is where the kubelet looks for plugins.
const DefaultRegistrationDir = "/var/lib/kubelet/plugins_registry"

// Registration is one driver's registration with the kubelet.
type Registration struct {
	// Dir is the kubelet's plugin registration directory.
	Dir string
	// DriverName is the CSI driver's name.
	DriverName string
	// Endpoint is the path of the driver's CSI socket as the kubelet sees
	// it (the node plugin mounts the host path at the same place).
	Endpoint string
	Log      *slog.Logger
}

// Serve serves the registration socket until ctx ends. A registration the
// kubelet rejects is returned as an error, so the plugin exits and is
// restarted rather than running unseen.
func (r Registration) Serve(ctx context.Context) error {
	sock := filepath.Join(r.Dir, r.DriverName+"-reg.sock")
	if err := os.MkdirAll(r.Dir, 0o750); err != nil {
		return fmt.Errorf("kubelet registration: %w", err)
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("kubelet registration: remove stale socket: %w", err)
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("kubelet registration: %w", err)
	}
	rejected := make(chan error, 1)
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, &server{r: r, rejected: rejected})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	r.Log.Info("waiting for the kubelet to register the driver", "driver", r.DriverName, "socket", sock, "endpoint", r.Endpoint)

	var result error
	select {
	case <-ctx.Done():
	case err := <-rejected:
		result = err
	case err := <-served:
		result = fmt.Errorf("kubelet registration: %w", err)
	}
	// Graceful, so the kubelet still gets the answer to the call that
	// rejected us.
	srv.GracefulStop()
	// The kubelet deregisters a plugin whose socket is gone.
	os.Remove(sock)
	return result
}

type server struct {
	registerapi.UnimplementedRegistrationServer
	r        Registration
	rejected chan<- error
}

// GetInfo tells the kubelet what this plugin is.
func (s *server) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              s.r.DriverName,
		Endpoint:          s.r.Endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

// NotifyRegistrationStatus receives the kubelet's verdict.
func (s *server) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if st.GetPluginRegistered() {
		s.r.Log.Info("registered with the kubelet", "driver", s.r.DriverName)
	} else {
		err := fmt.Errorf("the kubelet rejected driver %s: %s", s.r.DriverName, st.GetError())
		s.r.Log.Error("kubelet registration failed", "driver", s.r.DriverName, "error", st.GetError())
		select {
		case s.rejected <- err:
		default:
		}
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
