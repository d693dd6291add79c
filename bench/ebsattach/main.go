// Command ebsattach measures how EBS attaches on --cloud aws share their
// DescribeVolumes calls: an `ec2csi serve --driver ebs --mode controller
// --cloud aws` process against the AWS fake gets 100 ControllerPublishVolume
// calls at once (25 volumes to each of four instances, as Nitro limits
// allow), then 100 ControllerUnpublishVolume calls. It prints key=value
// lines: DescribeVolumes calls per attach (goal at most 0.2) and per
// detach, the other calls made, and attach latencies.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ec2csi/ec2csi/bench/internal/serveproc"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/ec2csi/ec2csi/internal/awsfake"
)

func main() {
	bin := flag.String("bin", "bin/ec2csi", "ec2csi binary")
	volumes := flag.Int("volumes", 100, "volumes attached at once")
	instances := flag.Int("instances", 4, "instances they are spread over")
	flag.Parse()
	if err := run(*bin, *volumes, *instances); err != nil {
		fmt.Fprintln(os.Stderr, "ebsattach:", err)
		os.Exit(1)
	}
}

func run(bin string, volumes, instances int) error {
	dir, err := os.MkdirTemp("", "ebs-attach-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	const zone = "us-east-1a"
	// AWS's attachment takes seconds; the fake's 0.5-3 s keeps the waits
	// real without making the run long.
	srv, err := awsfake.Start(awsfake.Options{Seed: 1, Delays: &awsfake.Delays{
		Default: awsfake.Delay{Max: 50 * time.Millisecond},
		Per: map[awsfake.Transition]awsfake.Delay{
			awsfake.VolumeAttach: {Min: 500 * time.Millisecond, Max: 3 * time.Second},
			awsfake.VolumeDetach: {Min: 500 * time.Millisecond, Max: 3 * time.Second},
		},
	}})
	if err != nil {
		return err
	}
	defer srv.Close()
	var nodes, vols []string
	for i := range instances {
		id := fmt.Sprintf("i-%017x", 0xabc0+i)
		if err := srv.AddInstance(id, zone, "m5.large"); err != nil {
			return err
		}
		nodes = append(nodes, id)
	}
	for range volumes {
		id, err := srv.AddVolume(awsfake.VolumeSpec{Zone: zone, SizeGiB: 10})
		if err != nil {
			return err
		}
		vols = append(vols, id)
	}

	sock := filepath.Join(dir, "ebs.sock")
	p, err := serveproc.Start(bin, sock, serveproc.FakeAWSEnv(srv.URL, dir), "--cloud", "aws", "--driver", "ebs", "--mode", "controller",
		"--region", "us-east-1", "--zone", zone, "--state-dir", filepath.Join(dir, "state"), "--endpoint", "unix://"+sock, "--log-level", "error")
	if err != nil {
		return err
	}
	defer p.Kill()
	ctrl := p.Ctrl
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	capability := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
	fmt.Printf("volumes=%d\ninstances=%d\n", volumes, instances)

	for _, phase := range []string{"attach", "detach"} {
		srv.ResetStats()
		lat := make([]time.Duration, volumes)
		errs := make([]error, volumes)
		start := time.Now()
		var wg sync.WaitGroup
		for i, v := range vols {
			wg.Go(func() {
				t0 := time.Now()
				if phase == "attach" {
					_, errs[i] = ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: v, NodeId: nodes[i%instances], VolumeCapability: capability})
				} else {
					_, errs[i] = ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: v, NodeId: nodes[i%instances]})
				}
				lat[i] = time.Since(t0)
			})
		}
		wg.Wait()
		wall := time.Since(start)
		for i, err := range errs {
			if err != nil {
				return fmt.Errorf("%s %s: %w", phase, vols[i], err)
			}
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		fmt.Printf("describe_calls_per_%s=%.3f\n", phase, float64(srv.Calls("DescribeVolumes"))/float64(volumes))
		fmt.Printf("%s_describe_volumes_calls=%d\n", phase, srv.Calls("DescribeVolumes"))
		fmt.Printf("%s_describe_instances_calls=%d\n", phase, srv.Calls("DescribeInstances"))
		fmt.Printf("%s_api_calls=%d\n", phase, srv.Calls("AttachVolume")+srv.Calls("DetachVolume"))
		fmt.Printf("%s_p50_ms=%.0f\n%s_p99_ms=%.0f\n%s_wall_seconds=%.2f\n", phase, ms(lat, 0.5), phase, ms(lat, 0.99), phase, wall.Seconds())
		for _, v := range vols {
			state, att, _ := srv.VolumeState(v)
			if (phase == "attach") != (state == "in-use" && len(att) == 1) {
				return fmt.Errorf("after %s, %s is %s attached to %v", phase, v, state, att)
			}
		}
	}
	return nil
}

func ms(sorted []time.Duration, q float64) float64 {
	return float64(sorted[int(q*float64(len(sorted)-1))].Microseconds()) / 1000
}
