package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ec2csi/ec2csi/internal/cloud/local"
	"github.com/ec2csi/ec2csi/internal/plugin"
)

func init() { extraCommands = append(extraCommands, newServeCommand) }

func newServeCommand() *cobra.Command {
	cfg := plugin.DefaultConfig()
	driver := "all"
	endpoints := newPerDriverFlag(cfg.Endpoints)
	names := newPerDriverFlag(cfg.Names)
	var (
		logs        logFlags
		efsTLS      bool
		tunnelPorts = fmt.Sprintf("%d-%d", cfg.TunnelPortMin, cfg.TunnelPortMax)
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the EFS and/or EBS CSI drivers",
		Long: `Serve the EFS and/or EBS CSI drivers on unix sockets.

With no flags, both drivers run in controller and node mode on the embedded
local backend (--cloud local), keeping everything under --state-dir: EFS file
systems are directories there (make one with 'ec2csi local create-filesystem').`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger()
			if err != nil {
				return err
			}
			cfg.Log = log
			switch driver {
			case "all":
				cfg.Drivers = []string{plugin.DriverEFS, plugin.DriverEBS}
			case plugin.DriverEFS, plugin.DriverEBS:
				cfg.Drivers = []string{driver}
			default:
				return fmt.Errorf("--driver %q: choose efs, ebs or all", driver)
			}
			if cfg.Endpoints, err = endpoints.resolve("endpoint", cfg.Drivers); err != nil {
				return err
			}
			if cfg.Names, err = names.resolve("driver-name", cfg.Drivers); err != nil {
				return err
			}
			if cmd.Flags().Changed("efs-tls") {
				cfg.EFSTLS = &efsTLS
			}
			if cfg.TunnelPortMin, cfg.TunnelPortMax, err = parsePortRange(tunnelPorts); err != nil {
				return fmt.Errorf("--tunnel-port-range %q: want LOW-HIGH within 1-65535", tunnelPorts)
			}
			if cfg.Cloud == plugin.CloudAWS {
				if err := resolveAWS(cmd, &cfg); err != nil {
					return err
				}
			}
			p, err := plugin.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer p.Close()
			return p.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&driver, "driver", driver, "which driver to serve: efs, ebs or all")
	f.StringVar(&cfg.Mode, "mode", cfg.Mode, "which CSI services to serve: controller, node or all")
	f.Var(endpoints, "endpoint", "CSI endpoint (unix:///path or tcp://host:port); with --driver all give efs=URL,ebs=URL")
	f.StringVar(&cfg.Cloud, "cloud", cfg.Cloud, "backend: local (everything on this machine) or aws")
	f.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "directory for the backend's and the node's state")
	f.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "this node's ID")
	f.Var(names, "driver-name", "CSI driver name; set efs=efs.csi.aws.com / ebs=ebs.csi.aws.com to take over the upstream drivers' volumes")
	f.StringVar(&cfg.MetricsAddress, "metrics-address", "", "serve Prometheus metrics and /healthz on this address, e.g. :9808 (off when empty)")
	f.StringVar(&cfg.Zone, "zone", local.DefaultZone, "availability zone of this node (on AWS: overrides instance metadata)")
	f.StringVar(&cfg.AWS.Region, "region", "", "AWS region (default: AWS_REGION, the shared config's profile, or instance metadata)")
	f.StringVar(&cfg.AWS.InstanceID, "instance-id", "", "this node's EC2 instance ID (default: from instance metadata)")
	f.StringVar(&cfg.AWS.DeviceRoot, "device-root", cfg.AWS.DeviceRoot, "where the EBS node finds the disk/by-id links of attached volumes (--cloud aws)")
	f.StringVar(&cfg.AWS.APIRateLimits, "aws-api-rate-limit", "", "client-side AWS API rate limits, API=CALLS_PER_SECOND[:BURST] separated by commas, * for every other API, e.g. DescribeVolumes=20,*=50 (off when empty)")
	f.StringVar(&cfg.AWS.KubeNodeName, "kube-node-name", kubeNodeName(), "the Kubernetes Node to read zone and instance from when IMDS is out of reach (default: $CSI_NODE_NAME, else $NODE_NAME)")
	f.IntVar(&cfg.AttachLimit, "volume-attach-limit", 0, "how many EBS volumes this node can hold attached (default: 25 on the local backend, from the instance type on AWS)")
	f.StringVar(&cfg.KubeletRegistrationDir, "kubelet-registration-dir", "", "register the node plugin with the kubelet through this directory, e.g. /var/lib/kubelet/plugins_registry (off when empty; then run node-driver-registrar)")
	f.BoolVar(&cfg.DeleteAccessPointRootDir, "delete-access-point-root-dir", false, "delete an EFS access point's directory and data with its volume, for every StorageClass (per StorageClass: deleteAccessPointRootDir)")
	f.BoolVar(&efsTLS, "efs-tls", false, "encrypt EFS mounts in transit unless a volume says otherwise (volume context encryptInTransit, mount options tls/notls); default: on with --cloud aws, off with --cloud local, where it sends each publish through a TLS tunnel to a local mount target first")
	f.StringVar(&cfg.EFSDNSSuffix, "efs-dns-suffix", cfg.EFSDNSSuffix, "DNS suffix of EFS names, fs-X.efs.REGION.SUFFIX (amazonaws.com.cn in China)")
	f.StringVar(&cfg.TunnelDaemonSocket, "tunnel-daemon-socket", "", "unix socket of the ec2csi tunnel-daemon holding this node's EFS TLS tunnels, e.g. /run/ec2csi/tunnel/tunnel.sock (empty: tunnels run in this process, under --state-dir/tunnel)")
	f.StringVar(&tunnelPorts, "tunnel-port-range", tunnelPorts, "local ports of EFS TLS tunnels run in this process, LOW-HIGH")
	logs.add(f)
	return cmd
}

// resolveAWS prepares --cloud aws: flags left at their local defaults do
// not apply, and the instance's metadata is resolved now so that the node
// ID defaults to the instance ID.
func resolveAWS(cmd *cobra.Command, cfg *plugin.Config) error {
	if !cmd.Flags().Changed("zone") {
		cfg.Zone = ""
	}
	if !cmd.Flags().Changed("node-id") {
		cfg.NodeID = ""
	}
	return plugin.ResolveAWS(cmd.Context(), cfg)
}

// kubeNodeName is the Node name a pod is usually given in its environment.
func kubeNodeName() string {
	if n := os.Getenv("CSI_NODE_NAME"); n != "" {
		return n
	}
	return os.Getenv("NODE_NAME")
}
