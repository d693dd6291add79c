package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	awscloud "github.com/ec2csi/ec2csi/internal/cloud/aws"
	"github.com/ec2csi/ec2csi/internal/ebs"
	"github.com/ec2csi/ec2csi/internal/efs"
	"github.com/ec2csi/ec2csi/internal/metadata"
)

// AWSConfig is what --cloud aws is told beyond the common settings.
type AWSConfig struct {
	// Region and InstanceID override instance metadata, as Config.Zone
	// does for the zone (--region, --instance-id).
	Region     string
	InstanceID string
	// DeviceRoot is where the EBS node finds the by-id links of attached
	// volumes: /dev on EC2 (--device-root).
	DeviceRoot string
	// APIRateLimits are client-side rate limits per AWS API, e.g.
	// "DescribeVolumes=20,*=50" (--aws-api-rate-limit).
	APIRateLimits string
	// KubeNodeName is the Kubernetes Node whose providerID and labels tell
	// zone and instance when IMDS cannot (--kube-node-name).
	KubeNodeName string
	// IMDSEndpoint overrides the IMDS address; AWS_EC2_METADATA_SERVICE_ENDPOINT
	// does the same from the environment.
	IMDSEndpoint string
	// SysfsRoot is where sysfs is mounted; default /sys.
	SysfsRoot string
	// Metrics receive the AWS API metrics; nil makes them in the plugin's
	// registry.
	Metrics *awscloud.Metrics
	// Retry and Waits tune the SDK's retries and EBS's polling (tests and
	// benchmarks; the defaults suit AWS).
	Retry awscloud.RetryOptions
	Waits awscloud.WaitOptions

	// instance is the metadata ResolveAWS found, so New does not ask again.
	instance *metadata.Instance
}

// ResolveAWS finds this instance's region, zone and ID for --cloud aws,
// and makes the instance ID the node ID when cfg has none: EC2 attaches
// volumes to instances, so the EBS node must report its instance ID to
// Kubernetes. serve calls it before New; New resolves by itself when it
// was not called.
func ResolveAWS(ctx context.Context, cfg *Config) error {
	sdk, err := loadAWSConfig(ctx)
	if err != nil {
		return err
	}
	inst, err := resolveInstance(ctx, *cfg, sdk)
	if err != nil {
		return err
	}
	cfg.AWS.instance = inst
	if cfg.NodeID == "" {
		cfg.NodeID = inst.InstanceID
	}
	return nil
}

// loadAWSConfig reads the SDK's configuration: the default credential
// chain (environment, shared files, web identity for IRSA, the instance
// profile through IMDS), the region from AWS_REGION or the profile, and
// endpoints from AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_EFS and
// AWS_ENDPOINT_URL_EC2.
func loadAWSConfig(ctx context.Context) (awssdk.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return cfg, fmt.Errorf("AWS SDK configuration: %w", err)
	}
	return cfg, nil
}

// resolveInstance asks the metadata sources for what the modes served
// need: the region always, zone and instance ID on a node.
func resolveInstance(ctx context.Context, cfg Config, sdk awssdk.Config) (*metadata.Instance, error) {
	region := cfg.AWS.Region
	if region == "" {
		region = sdk.Region // AWS_REGION or the shared config's profile
	}
	nodeName := cfg.AWS.KubeNodeName
	if nodeName == "" {
		// kubeadm names nodes after their host, and node plugins run in
		// the host's network namespace, so they share its name.
		nodeName, _ = os.Hostname()
	}
	o := metadata.Options{
		Region:         region,
		Zone:           cfg.Zone,
		InstanceID:     cfg.AWS.InstanceID,
		NeedZone:       cfg.node(),
		NeedInstanceID: cfg.node(),
		IMDS:           metadata.NewIMDS(sdk, cfg.AWS.IMDSEndpoint),
		NodeName:       nodeName,
		SysfsRoot:      cfg.AWS.SysfsRoot,
		Log:            cfg.Log,
		Instances: func(ctx context.Context, region, id string) (string, string, int, error) {
			c := sdk.Copy()
			c.Region = region
			i, err := awscloud.NewEBS(c, awscloud.Options{}, cfg.Log).DescribeInstance(ctx, id)
			if err != nil {
				return "", "", 0, err
			}
			return i.AvailabilityZone, i.Type, 0, nil
		},
	}
	if nodes, err := metadata.InCluster(); err != nil {
		o.NodesUnavailable = err.Error()
	} else {
		o.Nodes = nodes
	}
	return metadata.Resolve(ctx, o)
}

// newAWSBackend builds the AWS backend (aws-sdk-go-v2).
func newAWSBackend(ctx context.Context, cfg Config) (backend, error) {
	sdk, err := loadAWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	inst := cfg.AWS.instance
	if inst == nil {
		if inst, err = resolveInstance(ctx, cfg, sdk); err != nil {
			return nil, err
		}
	}
	sdk.Region = inst.Region
	limits, err := awscloud.ParseRateLimits(cfg.AWS.APIRateLimits)
	if err != nil {
		return nil, fmt.Errorf("--aws-api-rate-limit: %w", err)
	}
	metrics := cfg.AWS.Metrics
	if metrics == nil {
		metrics = awscloud.NewMetrics(cfg.registerer)
	}
	opts := awscloud.Options{Metrics: metrics, RateLimits: limits, Retry: cfg.AWS.Retry, Waits: cfg.AWS.Waits}
	b := &awsBackend{
		cfg:  cfg,
		inst: inst,
		efs:  awscloud.NewEFS(sdk, opts),
		ebs:  awscloud.NewEBS(sdk, opts, cfg.Log),
	}
	// The EFS node mounts NFS through TLS tunnels (efsnode.go); in a
	// process without an EFS node this refuses publishes and opens nothing.
	if b.efsSource, err = newEFSNodeSource(ctx, cfg, inst.Region, inst.Zone); err != nil {
		return nil, err
	}
	if cfg.node() && cfg.NodeID != inst.InstanceID && cfg.Log != nil {
		cfg.Log.Warn("the node ID is not this instance's ID; EC2 attaches EBS volumes to instance IDs, so attaching to this node will fail",
			"node_id", cfg.NodeID, "instance_id", inst.InstanceID)
	}
	return b, nil
}

// awsBackend is the AWS backend: EFS and EC2 through the SDK.
type awsBackend struct {
	cfg       Config
	inst      *metadata.Instance
	efs       *awscloud.EFS
	ebs       *awscloud.EBS
	efsSource efs.MountSource
}

func (b *awsBackend) Ready(ctx context.Context) error { return b.ebs.Ready(ctx) }

// EFS has no access to file system contents on AWS: deleting access point
// directories needs a mount, which the EFS node's tunnel will provide.
func (b *awsBackend) EFS() (efs.Cloud, efs.Files) { return b.efs, nil }

func (b *awsBackend) EFSSource() efs.MountSource { return b.efsSource }
func (b *awsBackend) EBS() ebs.Cloud             { return b.ebs }
func (b *awsBackend) DefaultZone() string        { return b.inst.Zone }

// EBSNode reports the instance's zone and attachment limit: the flag's, or
// one from the instance type (see awscloud.AttachLimit), and finds devices
// by their NVMe by-id links under --device-root.
func (b *awsBackend) EBSNode(ctx context.Context, nodeID string, limit int) (string, int, ebs.Devices, error) {
	if b.inst.Zone == "" {
		return "", 0, nil, errors.New("the EBS node needs this instance's availability zone: set --zone")
	}
	if limit == 0 {
		limit = b.attachLimit(ctx, nodeID)
	}
	root := b.cfg.AWS.DeviceRoot
	if root == "" {
		root = "/dev"
	}
	return b.inst.Zone, limit, ebs.LinkDevices{Root: root}, nil
}

// attachLimit works out how many volumes the node can take. IMDS tells the
// type, network interfaces and launch volumes without an API call;
// without IMDS, EC2's DescribeInstances does.
func (b *awsBackend) attachLimit(ctx context.Context, nodeID string) int {
	if b.inst.Sources[metadata.FieldInstanceType] == "imds" {
		return awscloud.AttachLimit(b.inst.InstanceType, b.inst.NetworkInterfaces, b.inst.LaunchVolumes)
	}
	i, err := b.ebs.DescribeInstance(ctx, nodeID)
	if err == nil {
		return i.AttachLimit
	}
	limit := awscloud.AttachLimit(b.inst.InstanceType, 0, 0)
	if b.cfg.Log != nil {
		b.cfg.Log.Warn("cannot describe this instance; using a conservative EBS attachment limit (set --volume-attach-limit to choose)",
			"instance", nodeID, "type", b.inst.InstanceType, "limit", limit, "error", err)
	}
	return limit
}
