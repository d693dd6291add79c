// Command ebslocal measures the EBS driver on the local backend the way the
// kubelet uses it: for N volumes, ControllerPublish (attach) +
// NodeStageVolume (mkfs, mount) + NodePublishVolume (bind mount), timed per
// volume, against a controller and a node plugin running as separate
// `ec2csi serve` processes; then the node process's memory with all N
// staged. It prints key=value lines.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ec2csi/ec2csi/bench/internal/serveproc"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

func main() {
	bin := flag.String("bin", "bin/ec2csi", "ec2csi binary")
	n := flag.Int("volumes", 50, "volumes to attach, stage and publish")
	fsType := flag.String("fstype", "ext4", "file system")
	flag.Parse()
	if err := run(*bin, *n, *fsType); err != nil {
		fmt.Fprintln(os.Stderr, "ebslocal:", err)
		os.Exit(1)
	}
}

func run(bin string, n int, fsType string) error {
	dir, err := os.MkdirTemp("", "ebs-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	state := filepath.Join(dir, "state")
	serve := func(mode, sock string) (*serveproc.Plugin, error) {
		return serveproc.Start(bin, sock, nil, "--driver", "ebs", "--mode", mode, "--state-dir", state,
			"--endpoint", "unix://"+sock, "--node-id", "bench-node", "--volume-attach-limit", strconv.Itoa(n+1), "--log-level", "warn")
	}
	// The node first: it registers itself with the backend.
	nodeP, err := serve("node", filepath.Join(dir, "node.sock"))
	if err != nil {
		return err
	}
	defer nodeP.Kill()
	ctrlP, err := serve("controller", filepath.Join(dir, "ctrl.sock"))
	if err != nil {
		return err
	}
	defer ctrlP.Kill()
	ctrl, node := ctrlP.Ctrl, nodeP.Node
	ctx := context.Background()
	vc := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fsType}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
	baseline, err := rssKiB(nodeP.Cmd.Process.Pid)
	if err != nil {
		return err
	}

	type vol struct{ id, staging, target string }
	var vols []vol
	var createTimes, times []time.Duration
	cleanup := func() {
		for _, v := range vols {
			node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.id, TargetPath: v.target})
			node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.staging})
			ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: v.id, NodeId: "bench-node"})
			ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.id})
		}
	}
	defer cleanup()
	for i := range n {
		start := time.Now()
		cv, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: fmt.Sprintf("bench-%03d", i), Parameters: map[string]string{"type": "gp3"},
			VolumeCapabilities: []*csi.VolumeCapability{vc}, CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 30}})
		if err != nil {
			return err
		}
		createTimes = append(createTimes, time.Since(start))
		v := vol{id: cv.GetVolume().GetVolumeId(), staging: filepath.Join(dir, "staging", strconv.Itoa(i)), target: filepath.Join(dir, "pods", strconv.Itoa(i))}
		vols = append(vols, v)

		start = time.Now()
		pub, err := ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: v.id, NodeId: "bench-node", VolumeCapability: vc})
		if err != nil {
			return err
		}
		if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.staging, VolumeCapability: vc, PublishContext: pub.GetPublishContext()}); err != nil {
			return err
		}
		if _, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: v.id, StagingTargetPath: v.staging, TargetPath: v.target, VolumeCapability: vc, PublishContext: pub.GetPublishContext()}); err != nil {
			return err
		}
		times = append(times, time.Since(start))
	}
	staged, err := rssKiB(nodeP.Cmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("volumes=%d\nfstype=%s\n", n, fsType)
	fmt.Printf("create_volume_p50_ms=%.1f\n", ms(pct(createTimes, 50)))
	fmt.Printf("attach_stage_publish_p50_ms=%.1f\n", ms(pct(times, 50)))
	fmt.Printf("attach_stage_publish_p99_ms=%.1f\n", ms(pct(times, 99)))
	fmt.Printf("attach_stage_publish_max_ms=%.1f\n", ms(pct(times, 100)))
	fmt.Printf("node_rss_idle_mib=%.1f\n", float64(baseline)/1024)
	fmt.Printf("node_rss_mib=%.1f\n", float64(staged)/1024)
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}
