// Package plugin assembles an ec2csi process: the chosen backend, the EFS
// and EBS drivers in controller and/or node mode, their gRPC endpoints, and
// the HTTP endpoint for metrics and health.
package plugin

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ec2csi/ec2csi/internal/tunnel"
)

// Driver names as the --driver flag spells them.
const (
	DriverEFS = "efs"
	DriverEBS = "ebs"
)

// Modes.
const (
	ModeController = "controller"
	ModeNode       = "node"
	ModeAll        = "all"
)

// Clouds.
const (
	CloudLocal = "local"
	CloudAWS   = "aws"
)

// DefaultLocalAttachLimit is the local node's EBS attachment limit unless
// --volume-attach-limit says otherwise: what a typical Nitro instance
// leaves for data volumes.
const DefaultLocalAttachLimit = 25

// Config is everything `ec2csi serve` is told.
type Config struct {
	Drivers []string
	Mode    string
	Cloud   string
	// Endpoints and Names are keyed by driver.
	Endpoints map[string]string
	Names     map[string]string
	StateDir  string
	NodeID    string
	// Zone is the availability zone of this node on the local backend; on
	// AWS it overrides what instance metadata says.
	Zone string
	// AttachLimit is how many EBS volumes this node can hold attached; 0
	// means the backend's default (on AWS: from the instance type).
	AttachLimit    int
	MetricsAddress string
	// KubeletRegistrationDir, when set, makes the node plugin register
	// itself with the kubelet there (no node-driver-registrar needed).
	KubeletRegistrationDir string
	// DeleteAccessPointRootDir deletes access point directories with their
	// volumes for every EFS StorageClass.
	DeleteAccessPointRootDir bool
	// EFSTLS is the EFS node's default for encryption in transit, for
	// volumes whose context and mount options do not choose (--efs-tls).
	// Nil means on with --cloud aws, as upstream's encryptInTransit, and
	// off with --cloud local, where it sends every publish through a TLS
	// tunnel to a local mount target first.
	EFSTLS *bool
	// EFSDNSSuffix ends EFS DNS names, fs-X.efs.REGION.SUFFIX
	// (--efs-dns-suffix): amazonaws.com, amazonaws.com.cn in China.
	EFSDNSSuffix string
	// TunnelDaemonSocket is the unix socket of the `ec2csi tunnel-daemon`
	// that holds this node's EFS TLS tunnels (--tunnel-daemon-socket).
	// Empty runs them in this process, with their state under
	// StateDir/tunnel.
	TunnelDaemonSocket string
	// TunnelPortMin..TunnelPortMax are the local ports of tunnels run in
	// this process (--tunnel-port-range); zero means the tunnel package's
	// default range.
	TunnelPortMin, TunnelPortMax int
	// AWS configures --cloud aws (aws.go).
	AWS AWSConfig
	Log *slog.Logger

	// registerer receives the metrics of tunnels run in this process; New
	// sets it to the plugin's registry.
	registerer prometheus.Registerer
}

// DefaultConfig returns the defaults the flags document.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Drivers:  []string{DriverEFS, DriverEBS},
		Mode:     ModeAll,
		Cloud:    CloudLocal,
		StateDir: "/var/lib/ec2csi",
		NodeID:   host,
		Endpoints: map[string]string{
			DriverEFS: "unix:///run/ec2csi/efs.sock",
			DriverEBS: "unix:///run/ec2csi/ebs.sock",
		},
		Names: map[string]string{
			DriverEFS: "efs.ec2csi.io",
			DriverEBS: "ebs.ec2csi.io",
		},
		EFSDNSSuffix:  tunnel.DefaultDNSSuffix,
		TunnelPortMin: tunnel.DefaultPortMin,
		TunnelPortMax: tunnel.DefaultPortMax,
		AWS:           AWSConfig{DeviceRoot: "/dev"},
	}
}

// Validate checks the configuration and names the first wrong setting.
func (c *Config) Validate() error {
	if len(c.Drivers) == 0 {
		return errors.New("--driver: choose efs, ebs or all")
	}
	for _, d := range c.Drivers {
		if d != DriverEFS && d != DriverEBS {
			return fmt.Errorf("--driver %q: choose efs, ebs or all", d)
		}
		if c.Endpoints[d] == "" {
			return fmt.Errorf("--endpoint: no endpoint for the %s driver", d)
		}
		if c.Names[d] == "" {
			return fmt.Errorf("--driver-name: no name for the %s driver", d)
		}
	}
	if len(c.Drivers) > 1 && c.Endpoints[c.Drivers[0]] == c.Endpoints[c.Drivers[1]] {
		return fmt.Errorf("--endpoint: the efs and ebs drivers need different endpoints, both are %s", c.Endpoints[c.Drivers[0]])
	}
	if !slices.Contains([]string{ModeController, ModeNode, ModeAll}, c.Mode) {
		return fmt.Errorf("--mode %q: choose controller, node or all", c.Mode)
	}
	if !slices.Contains([]string{CloudLocal, CloudAWS}, c.Cloud) {
		return fmt.Errorf("--cloud %q: choose local or aws", c.Cloud)
	}
	if c.StateDir == "" {
		return errors.New("--state-dir must not be empty")
	}
	if c.KubeletRegistrationDir != "" {
		for _, d := range c.Drivers {
			if !strings.HasPrefix(c.Endpoints[d], "unix://") {
				return fmt.Errorf("--kubelet-registration-dir needs unix:// endpoints; the %s endpoint is %s", d, c.Endpoints[d])
			}
		}
	}
	if c.AttachLimit < 0 {
		return fmt.Errorf("--volume-attach-limit %d: want at least 1 (or 0 for the default)", c.AttachLimit)
	}
	if c.TunnelPortMin != 0 || c.TunnelPortMax != 0 {
		if c.TunnelPortMin < 1 || c.TunnelPortMax > 65535 || c.TunnelPortMin > c.TunnelPortMax {
			return fmt.Errorf("--tunnel-port-range %d-%d: want LOW-HIGH within 1-65535", c.TunnelPortMin, c.TunnelPortMax)
		}
	}
	if strings.ContainsAny(c.EFSDNSSuffix, "/: ") || strings.HasPrefix(c.EFSDNSSuffix, ".") {
		return fmt.Errorf("--efs-dns-suffix %q: want a DNS suffix such as amazonaws.com", c.EFSDNSSuffix)
	}
	if c.NodeID == "" && c.Mode != ModeController {
		return errors.New("--node-id: no node ID given and the host name is unknown")
	}
	return nil
}

func (c *Config) controller() bool { return c.Mode == ModeController || c.Mode == ModeAll }
func (c *Config) node() bool       { return c.Mode == ModeNode || c.Mode == ModeAll }

// efsNode reports whether this process serves the EFS node.
func (c *Config) efsNode() bool { return c.node() && slices.Contains(c.Drivers, DriverEFS) }

// efsTLS is the EFS node's default for encryption in transit.
func (c *Config) efsTLS() bool {
	if c.EFSTLS != nil {
		return *c.EFSTLS
	}
	return c.Cloud == CloudAWS
}
