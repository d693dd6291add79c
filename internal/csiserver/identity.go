package csiserver

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Identity serves the CSI Identity service for one driver.
type Identity struct {
	csi.UnimplementedIdentityServer
	// Name is the driver name the CO knows it by, e.g. efs.csi.aws.com.
	Name    string
	Version string
	// ControllerService says whether this process also serves the
	// Controller service.
	ControllerService bool
	// Extra holds driver-specific capabilities, e.g. online expansion.
	Extra []*csi.PluginCapability
	// Ready reports whether the backend is usable; nil means always ready.
	Ready func(ctx context.Context) error
}

// GetPluginInfo returns the driver's name and version.
func (i *Identity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: i.Name, VendorVersion: i.Version}, nil
}

// GetPluginCapabilities lists the services and features the driver offers.
func (i *Identity) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	var caps []*csi.PluginCapability
	if i.ControllerService {
		caps = append(caps, &csi.PluginCapability{Type: &csi.PluginCapability_Service_{
			Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE},
		}})
	}
	caps = append(caps, i.Extra...)
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

// Probe answers ready only when the backend is usable. An unusable backend
// is an error (Unavailable or the mapped code) rather than ready=false, so
// the liveness probe restarts a plugin that cannot recover by itself.
func (i *Identity) Probe(ctx context.Context, _ *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	if i.Ready != nil {
		if err := i.Ready(ctx); err != nil {
			return nil, Status(err)
		}
	}
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}

// NoController is the Controller service of a node-only process: it answers
// ControllerGetCapabilities with nothing, as COs and csi-sanity ask it even
// there, and Unimplemented to everything else.
type NoController struct {
	csi.UnimplementedControllerServer
}

// ControllerGetCapabilities reports no capabilities.
func (NoController) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{}, nil
}
