package main

import (
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ec2csi/ec2csi/internal/awsfake"
)

func init() {
	devSubcommands = append(devSubcommands, newFakeAWSCommand)
	extraCommands = append(extraCommands, newDevCommand)
}

// devSubcommands lets developer tools join the "dev" command from their
// own files' init functions.
var devSubcommands []func() *cobra.Command

func newDevCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "dev",
		Short:  "Tools for developing and testing ec2csi",
		Hidden: true,
	}
	for _, add := range devSubcommands {
		cmd.AddCommand(add())
	}
	return cmd
}

func newFakeAWSCommand() *cobra.Command {
	var (
		listen, stateDir, region string
		zones, instances, fss    []string
		seed                     uint64
		loopDevices, verbose     bool
		transition, latency      time.Duration
		visibility               time.Duration
		faults                   awsfake.Faults
	)
	cmd := &cobra.Command{
		Use:   "fake-aws",
		Short: "Serve a fake of the EFS and EC2 APIs for the AWS SDK",
		Long: `Serve a fake of the Amazon EFS and EC2 APIs on a local address.

Point SDK clients at it with AWS_ENDPOINT_URL=http://ADDRESS (any static
credentials do). Attached EBS volumes are sparse files under --state-dir, or
loop devices with --loop, and get NVMe by-id links under STATE-DIR/dev.
The URL is written to STATE-DIR/endpoint.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := awsfake.Options{Region: region, Zones: zones, Seed: seed}
			if cmd.Flags().Changed("transition-delay") {
				opts.Delays = &awsfake.Delays{Default: awsfake.Delay{Max: transition}}
			}
			faults.Latency = awsfake.Delay{Min: latency, Max: latency}
			faults.Visibility = visibility
			opts.Faults = faults
			for _, s := range instances {
				spec, err := parseInstanceFlag(s)
				if err != nil {
					return err
				}
				opts.Instances = append(opts.Instances, spec)
			}
			for _, id := range fss {
				opts.FileSystems = append(opts.FileSystems, awsfake.FileSystemSpec{ID: id})
			}
			if loopDevices {
				if stateDir == "" {
					return fmt.Errorf("--loop needs --state-dir")
				}
				opts.Devices = awsfake.NewLoopDevices(stateDir + "/volumes")
			}
			if verbose {
				opts.Logf = log.New(cmd.ErrOrStderr(), "fake-aws: ", log.LstdFlags|log.Lmicroseconds).Printf
			}
			return awsfake.Serve(cmd.Context(), listen, stateDir, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	f.StringVar(&stateDir, "state-dir", "", "directory for volume data, device links and the endpoint file")
	f.StringVar(&region, "region", "us-east-1", "region the fake reports")
	f.StringSliceVar(&zones, "zones", nil, "availability zones (default REGION a, b and c)")
	f.StringArrayVar(&instances, "instance", nil, "seed an instance: ID[:ZONE[:TYPE]] (repeatable)")
	f.StringArrayVar(&fss, "file-system", nil, "seed an EFS file system with a mount target per zone (repeatable)")
	f.Uint64Var(&seed, "seed", 0, "seed for IDs, delays and faults")
	f.BoolVar(&loopDevices, "loop", false, "attach volumes as loop devices (needs root)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log every request")
	f.DurationVar(&transition, "transition-delay", 50*time.Millisecond, "longest time a state transition takes")
	f.DurationVar(&latency, "latency", 0, "added to every request")
	f.DurationVar(&visibility, "visibility-delay", 0, "how long new resources stay invisible to Describe calls")
	f.Float64Var(&faults.ThrottleRate, "throttle-rate", 0, "fraction of requests throttled")
	f.Float64Var(&faults.InternalErrorRate, "error-rate", 0, "fraction of requests failed with an internal error")
	f.Float64Var(&faults.LostResponseRate, "lost-response-rate", 0, "fraction of requests done but answered with a dropped connection")
	return cmd
}

// parseInstanceFlag reads ID[:ZONE[:TYPE]].
func parseInstanceFlag(s string) (awsfake.InstanceSpec, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 3 || parts[0] == "" {
		return awsfake.InstanceSpec{}, fmt.Errorf("--instance %q: want ID[:ZONE[:TYPE]]", s)
	}
	spec := awsfake.InstanceSpec{ID: parts[0]}
	if len(parts) > 1 {
		spec.Zone = parts[1]
	}
	if len(parts) > 2 {
		spec.InstanceType = parts[2]
	}
	return spec, nil
}
