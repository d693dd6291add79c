// Command publishtls measures EFS NodePublishVolume with encryption in
// transit on the local backend, against a bind-only publish of the same
// volumes in the same run. For N access points (distinct volumes, so each
// TLS publish opens a tunnel of its own: a port, a client certificate, a
// TLS handshake with the local mount target and its certificate check),
// it times NodePublishVolume against `ec2csi serve --cloud local --efs-tls`,
// then against `ec2csi serve --cloud local` on the same state directory.
// It prints key=value lines.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/ec2csi/ec2csi/bench/internal/serveproc"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

const fsID = "fs-12345678"

func main() {
	bin := flag.String("bin", "bin/ec2csi", "ec2csi binary")
	n := flag.Int("volumes", 50, "volumes to publish, each to its own target")
	ports := flag.String("tunnel-port-range", "23500-23699", "ports of the plugin's tunnels")
	flag.Parse()
	if err := run(*bin, *n, *ports); err != nil {
		fmt.Fprintln(os.Stderr, "publishtls:", err)
		os.Exit(1)
	}
}

func serve(bin, dir string, args ...string) (*serveproc.Plugin, error) {
	sock := filepath.Join(dir, "efs.sock")
	return serveproc.Start(bin, sock, nil, append([]string{"--driver", "efs", "--cloud", "local",
		"--state-dir", filepath.Join(dir, "state"), "--endpoint", "unix://" + sock, "--node-id", "bench-node", "--log-level", "warn"}, args...)...)
}

var rwx = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
}

func run(bin string, n int, ports string) error {
	dir, err := os.MkdirTemp("", "publish-tls-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if out, err := exec.Command(bin, "local", "create-filesystem", "--state-dir", filepath.Join(dir, "state"), "--id", fsID).CombinedOutput(); err != nil {
		return fmt.Errorf("create file system: %v: %s", err, out)
	}
	ctx := context.Background()

	p, err := serve(bin, dir, "--efs-tls", "--tunnel-port-range", ports)
	if err != nil {
		return err
	}
	// n access points, plus one to warm up: the first TLS publish of a
	// node makes its RSA key, once in the node's life.
	var vols []string
	for i := range n + 1 {
		resp, err := p.Ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name: fmt.Sprintf("bench-%03d", i), VolumeCapabilities: []*csi.VolumeCapability{rwx},
			Parameters: map[string]string{"provisioningMode": "efs-ap", "fileSystemId": fsID},
		})
		if err != nil {
			p.Stop()
			return err
		}
		vols = append(vols, resp.GetVolume().GetVolumeId())
	}
	tls, err := publishAll(ctx, p, vols, filepath.Join(dir, "pods-tls"))
	p.Stop()
	if err != nil {
		return fmt.Errorf("TLS: %w", err)
	}

	p, err = serve(bin, dir)
	if err != nil {
		return err
	}
	plain, err := publishAll(ctx, p, vols, filepath.Join(dir, "pods-plain"))
	p.Stop()
	if err != nil {
		return fmt.Errorf("bind only: %w", err)
	}

	fmt.Printf("publish_volumes=%d\n", n)
	fmt.Printf("publish_tls_p50_ms=%.2f\n", ms(pct(tls, 50)))
	fmt.Printf("publish_tls_p99_ms=%.2f\n", ms(pct(tls, 99)))
	fmt.Printf("publish_plain_p50_ms=%.2f\n", ms(pct(plain, 50)))
	fmt.Printf("publish_plain_p99_ms=%.2f\n", ms(pct(plain, 99)))
	return nil
}

// publishAll publishes each volume to a target of its own, timing all but
// the first (the warm-up), then unpublishes them all.
func publishAll(ctx context.Context, p *serveproc.Plugin, vols []string, root string) (times []time.Duration, err error) {
	var published []int
	defer func() {
		for _, i := range published {
			_, uerr := p.Node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vols[i], TargetPath: filepath.Join(root, strconv.Itoa(i))})
			if uerr != nil && err == nil {
				err = fmt.Errorf("unpublish: %w", uerr)
			}
		}
	}()
	for i, id := range vols {
		start := time.Now()
		_, err := p.Node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, TargetPath: filepath.Join(root, strconv.Itoa(i)), VolumeCapability: rwx})
		d := time.Since(start)
		if err != nil {
			return nil, err
		}
		published = append(published, i)
		if i > 0 {
			times = append(times, d)
		}
	}
	return times, nil
}

// pct is the p-th percentile by nearest rank (with 50 samples, p99 is the
// slowest).
func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
