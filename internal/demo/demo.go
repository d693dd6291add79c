// Package demo walks a newcomer through the life of a volume on the
// embedded local backend: it starts the plugin in-process on a temporary
// state directory and makes the same CSI calls Kubernetes would, printing
// each call, its result and how long it took.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/cloud/local"
	"github.com/ec2csi/ec2csi/internal/plugin"
)

// Options tune a demo run.
type Options struct {
	// Dir is the parent of the temporary state directory; empty means the
	// system's temporary directory.
	Dir string
	// AfterStep, when set, is called after each step with its title; tests
	// use it to interrupt the demo at a chosen point.
	AfterStep func(title string)
}

// Run runs the demo, writing to out. Whatever happens, including ctx being
// cancelled by an interrupt, everything it mounted is unmounted and its
// directory removed before Run returns.
func Run(ctx context.Context, out io.Writer, opts Options) (err error) {
	dir, err := os.MkdirTemp(opts.Dir, "ec2csi-demo-")
	if err != nil {
		return err
	}
	d := &walk{out: out, opts: opts, dir: dir}
	defer func() {
		if cerr := d.cleanup(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	return d.run(ctx)
}

// undoStep is a step that reverses an earlier one, kept so that cleanup can
// run it if the demo stops early.
type undoStep struct {
	title string
	fn    func(context.Context) error
}

type walk struct {
	out   io.Writer
	opts  Options
	dir   string
	n     int
	ctrl  csi.ControllerClient
	node  csi.NodeClient
	ebsC  csi.ControllerClient
	ebsN  csi.NodeClient
	stop  func()
	conns []*grpc.ClientConn
	undo  []undoStep
	total time.Duration
}

func (d *walk) step(title string, fn func() (string, error)) error {
	d.n++
	start := time.Now()
	result, err := fn()
	took := time.Since(start)
	d.total += took
	if err != nil {
		if s, ok := status.FromError(err); ok {
			err = fmt.Errorf("%s: %s", s.Code(), s.Message())
		}
		fmt.Fprintf(d.out, "%2d. %s\n    ✗ %v (%s)\n", d.n, title, err, round(took))
		return err
	}
	fmt.Fprintf(d.out, "%2d. %s\n    → %s (%s)\n", d.n, title, result, round(took))
	if d.opts.AfterStep != nil {
		d.opts.AfterStep(title)
	}
	return nil
}

func round(t time.Duration) time.Duration {
	if t < time.Millisecond {
		return t.Round(time.Microsecond)
	}
	return t.Round(10 * time.Microsecond)
}

func (d *walk) run(ctx context.Context) error {
	state := filepath.Join(d.dir, "state")
	fmt.Fprintf(d.out, "ec2csi demo: the life of an EFS volume and an EBS volume on the embedded local backend\nstate directory: %s (removed at the end)\n\n== EFS: a shared file system, ReadWriteMany\n", state)

	backend, err := local.Open(ctx, state, local.Options{})
	if err != nil {
		return err
	}
	var fsID string
	if err := d.step("Create an EFS file system   (ec2csi local create-filesystem)", func() (string, error) {
		fs, err := backend.CreateFileSystem(ctx, "", "demo")
		if err != nil {
			return "", err
		}
		fsID = fs.ID
		return fmt.Sprintf("%s, a directory at %s", fs.ID, filepath.Join(state, "efs", fs.ID)), nil
	}); err != nil {
		return err
	}

	if err := d.start(ctx, state); err != nil {
		return err
	}

	capability := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
	}
	var volumeID string
	params := map[string]string{"provisioningMode": "efs-ap", "fileSystemId": fsID, "directoryPerms": "0775", "basePath": "/dynamic"}
	if err := d.step(fmt.Sprintf("CreateVolume name=pvc-demo %s", formatParams(params)), func() (string, error) {
		resp, err := d.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name: "pvc-demo", Parameters: params, VolumeCapabilities: []*csi.VolumeCapability{capability},
			CapacityRange: &csi.CapacityRange{RequiredBytes: 5 << 30},
		})
		if err != nil {
			return "", err
		}
		volumeID = resp.GetVolume().GetVolumeId()
		ap, err := backend.DescribeAccessPoint(ctx, volumeID[strings.LastIndex(volumeID, ":")+1:])
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("volume %s: access point with root %s, uid/gid %d/%d", volumeID, ap.RootDirectory, ap.PosixUser.UID, ap.PosixUser.GID), nil
	}); err != nil {
		return err
	}
	d.undo = append(d.undo, undoStep{
		title: "DeleteVolume " + volumeID + " (the data stays unless deleteAccessPointRootDir is set)",
		fn: func(ctx context.Context) error {
			_, err := d.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: volumeID})
			return err
		},
	})

	pods := []string{filepath.Join(d.dir, "pod-a", "mnt"), filepath.Join(d.dir, "pod-b", "mnt")}
	for _, target := range pods {
		if err := d.step("NodePublishVolume → "+target, func() (string, error) {
			_, err := d.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: volumeID, TargetPath: target, VolumeCapability: capability})
			if err != nil {
				return "", err
			}
			return "bind-mounted the access point's directory", nil
		}); err != nil {
			return err
		}
		d.undo = append(d.undo, undoStep{
			title: "NodeUnpublishVolume ← " + target,
			fn: func(ctx context.Context) error {
				_, err := d.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: volumeID, TargetPath: target})
				return err
			},
		})
	}

	const msg = "hello from pod-a"
	if err := d.step("pod-a writes out.txt", func() (string, error) {
		return fmt.Sprintf("%q", msg), os.WriteFile(filepath.Join(pods[0], "out.txt"), []byte(msg), 0o644)
	}); err != nil {
		return err
	}
	if err := d.step("pod-b reads out.txt", func() (string, error) {
		b, err := os.ReadFile(filepath.Join(pods[1], "out.txt"))
		if err == nil && string(b) != msg {
			err = fmt.Errorf("read %q, want %q", b, msg)
		}
		return fmt.Sprintf("%q: both pods see the same file system", b), err
	}); err != nil {
		return err
	}
	if err := d.step("NodeGetVolumeStats "+pods[1], func() (string, error) {
		resp, err := d.node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: volumeID, VolumePath: pods[1]})
		if err != nil {
			return "", err
		}
		u := resp.GetUsage()
		return fmt.Sprintf("%d MiB free of %d MiB, %d inodes used", u[0].GetAvailable()>>20, u[0].GetTotal()>>20, u[1].GetUsed()), nil
	}); err != nil {
		return err
	}

	// Tear down in reverse, as Kubernetes does when the pods and the PVC go.
	if err := d.teardown(ctx); err != nil {
		return err
	}
	if err := d.ebs(ctx); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "\n%d steps, %s in CSI calls and file I/O. Next: 'ec2csi serve' and the README's Kubernetes section.\n", d.n, round(d.total))
	return nil
}

// start serves both drivers on sockets in the demo directory and connects
// to them, so every call below crosses gRPC as Kubernetes' would.
func (d *walk) start(ctx context.Context, state string) error {
	socks := map[string]string{plugin.DriverEFS: filepath.Join(d.dir, "efs.sock"), plugin.DriverEBS: filepath.Join(d.dir, "ebs.sock")}
	cfg := plugin.DefaultConfig()
	cfg.StateDir = state
	cfg.Endpoints = map[string]string{plugin.DriverEFS: "unix://" + socks[plugin.DriverEFS], plugin.DriverEBS: "unix://" + socks[plugin.DriverEBS]}
	cfg.NodeID = demoNode
	// The walk prints each call itself; the plugin's own log would repeat
	// it, so only its warnings get through.
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := plugin.New(ctx, cfg)
	if err != nil {
		return err
	}
	// The server outlives ctx so that cleanup can still call it after an
	// interrupt.
	srvCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- p.Run(srvCtx) }()
	d.stop = func() { cancel(); <-done }
	conns := map[string]*grpc.ClientConn{}
	for drv, sock := range socks {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the plugin did not start serving on %s", sock)
			}
		}
		conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		conns[drv] = conn
		d.conns = append(d.conns, conn)
	}
	d.ctrl, d.node = csi.NewControllerClient(conns[plugin.DriverEFS]), csi.NewNodeClient(conns[plugin.DriverEFS])
	d.ebsC, d.ebsN = csi.NewControllerClient(conns[plugin.DriverEBS]), csi.NewNodeClient(conns[plugin.DriverEBS])
	return nil
}

const demoNode = "demo-node"

// cleanup undoes whatever the run did not get to, then removes the
// directory. It never trusts os.RemoveAll across a mount: a failed
// unmount stops it rather than deleting through the mount.
func (d *walk) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for i := len(d.undo) - 1; i >= 0; i-- {
		if err := d.undo[i].fn(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range d.conns {
		c.Close()
	}
	if d.stop != nil {
		d.stop()
	}
	if len(errs) > 0 {
		return fmt.Errorf("demo cleanup left %s in place: %w", d.dir, errors.Join(errs...))
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return fmt.Errorf("remove %s: %w", d.dir, err)
	}
	return nil
}

func formatParams(p map[string]string) string {
	keys := []string{"provisioningMode", "fileSystemId", "directoryPerms", "basePath"}
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+p[k])
	}
	return strings.Join(parts, " ")
}

// teardown runs the pending undo steps, newest first, as steps of the walk.
func (d *walk) teardown(ctx context.Context) error {
	for len(d.undo) > 0 {
		undo := d.undo[len(d.undo)-1]
		if err := d.step(undo.title, func() (string, error) { return "done", undo.fn(ctx) }); err != nil {
			return err
		}
		d.undo = d.undo[:len(d.undo)-1]
	}
	return nil
}

// ebs walks a block volume through attach, format, online expansion,
// snapshot and restore.
func (d *walk) ebs(ctx context.Context) error {
	fmt.Fprintf(d.out, "\n== EBS: a block volume in one zone, ReadWriteOnce\n")
	capability := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "xfs"}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
	create := func(name, snapshot string, id *string) (string, error) {
		req := &csi.CreateVolumeRequest{Name: name, Parameters: map[string]string{"type": "gp3", "iops": "4000", "throughput": "250"},
			VolumeCapabilities: []*csi.VolumeCapability{capability}, CapacityRange: &csi.CapacityRange{RequiredBytes: 10 << 30}}
		if snapshot != "" {
			req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snapshot}}}
		}
		resp, err := d.ebsC.CreateVolume(ctx, req)
		if err != nil {
			return "", err
		}
		v := resp.GetVolume()
		*id = v.GetVolumeId()
		d.undo = append(d.undo, undoStep{title: "DeleteVolume " + v.GetVolumeId(), fn: func(ctx context.Context) error {
			_, err := d.ebsC.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()})
			return err
		}})
		return fmt.Sprintf("%s, %d GiB gp3 in zone %s (a sparse file)", v.GetVolumeId(), v.GetCapacityBytes()>>30, v.GetAccessibleTopology()[0].GetSegments()["topology.kubernetes.io/zone"]), nil
	}
	// use attaches, stages and publishes, as the attacher and kubelet do.
	use := func(id, pod string) error {
		staging := filepath.Join(d.dir, "staging", id)
		target := filepath.Join(d.dir, pod, "mnt")
		var publishContext map[string]string
		for _, st := range []struct {
			title string
			fn    func() (string, error)
			undo  undoStep
		}{
			{"ControllerPublishVolume " + id + " → " + demoNode, func() (string, error) {
				r, err := d.ebsC.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: demoNode, VolumeCapability: capability})
				publishContext = r.GetPublishContext()
				return "attached as a loop device, link " + filepath.Base(publishContext["devicePath"]), err
			}, undoStep{"ControllerUnpublishVolume " + id, func(ctx context.Context) error {
				_, err := d.ebsC.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id, NodeId: demoNode})
				return err
			}}},
			{"NodeStageVolume " + id, func() (string, error) {
				_, err := d.ebsN.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: capability, PublishContext: publishContext})
				return "device verified, formatted xfs only if empty, mounted at the staging path", err
			}, undoStep{"NodeUnstageVolume " + id, func(ctx context.Context) error {
				_, err := d.ebsN.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging})
				return err
			}}},
			{"NodePublishVolume " + id + " → " + target, func() (string, error) {
				_, err := d.ebsN.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: target, VolumeCapability: capability, PublishContext: publishContext})
				return "bind-mounted into the pod", err
			}, undoStep{"NodeUnpublishVolume " + id, func(ctx context.Context) error {
				_, err := d.ebsN.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
				return err
			}}},
		} {
			if err := d.step(st.title, st.fn); err != nil {
				return err
			}
			d.undo = append(d.undo, st.undo)
		}
		return nil
	}

	var volumeID, snapshotID, restoredID string
	if err := d.step("CreateVolume name=pvc-ebs-demo type=gp3 iops=4000 throughput=250 fstype=xfs", func() (string, error) {
		return create("pvc-ebs-demo", "", &volumeID)
	}); err != nil {
		return err
	}
	if err := use(volumeID, "pod-db"); err != nil {
		return err
	}
	pod := filepath.Join(d.dir, "pod-db", "mnt")
	const msg = "rows written before the snapshot"
	if err := d.step("pod-db writes table.dat", func() (string, error) {
		return fmt.Sprintf("%q", msg), os.WriteFile(filepath.Join(pod, "table.dat"), []byte(msg), 0o644)
	}); err != nil {
		return err
	}
	if err := d.step("ControllerExpandVolume + NodeExpandVolume 10 GiB → 12 GiB, online", func() (string, error) {
		if _, err := d.ebsC.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: volumeID, CapacityRange: &csi.CapacityRange{RequiredBytes: 12 << 30}, VolumeCapability: capability}); err != nil {
			return "", err
		}
		if _, err := d.ebsN.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: volumeID, VolumePath: pod, VolumeCapability: capability}); err != nil {
			return "", err
		}
		st, err := d.ebsN.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: volumeID, VolumePath: pod})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("the pod now sees %d MiB", st.GetUsage()[0].GetTotal()>>20), nil
	}); err != nil {
		return err
	}
	if err := d.step("CreateSnapshot name=snap-demo of "+volumeID, func() (string, error) {
		r, err := d.ebsC.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snap-demo", SourceVolumeId: volumeID})
		if err != nil {
			return "", err
		}
		snapshotID = r.GetSnapshot().GetSnapshotId()
		d.undo = append(d.undo, undoStep{title: "DeleteSnapshot " + snapshotID, fn: func(ctx context.Context) error {
			_, err := d.ebsC.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snapshotID})
			return err
		}})
		return fmt.Sprintf("%s, %d MiB, ready=%t (the file system was frozen for the copy)", snapshotID, r.GetSnapshot().GetSizeBytes()>>20, r.GetSnapshot().GetReadyToUse()), nil
	}); err != nil {
		return err
	}
	if err := d.step("pod-db writes more after the snapshot", func() (string, error) {
		return "later.dat", os.WriteFile(filepath.Join(pod, "later.dat"), []byte("after"), 0o644)
	}); err != nil {
		return err
	}
	if err := d.step("CreateVolume name=pvc-restored from the snapshot", func() (string, error) {
		return create("pvc-restored", snapshotID, &restoredID)
	}); err != nil {
		return err
	}
	if err := use(restoredID, "pod-restore"); err != nil {
		return err
	}
	if err := d.step("pod-restore reads the restored volume", func() (string, error) {
		b, err := os.ReadFile(filepath.Join(d.dir, "pod-restore", "mnt", "table.dat"))
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(filepath.Join(d.dir, "pod-restore", "mnt", "later.dat")); err == nil {
			return "", fmt.Errorf("later.dat, written after the snapshot, is in the restore")
		}
		return fmt.Sprintf("%q and nothing written later", b), nil
	}); err != nil {
		return err
	}
	return d.teardown(ctx)
}
