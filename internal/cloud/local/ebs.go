package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/ebs"
	"github.com/ec2csi/ec2csi/internal/loop"
	"github.com/ec2csi/ec2csi/internal/store"
)

// Layout of the EBS state, below the state directory:
//
//	ebs/volumes/vol-X.img      a volume: a sparse file
//	ebs/snapshots/snap-X.img   a snapshot: a reflinked or sparse copy
//	ebs/dev/disk/by-id/nvme-…  device links of attached volumes, named as
//	                           udev names EBS NVMe devices
//	ebs/locks/vol-X            per-volume locks shared by processes
const (
	bucketVolumes     = "ebs-volumes"
	bucketVolumeToken = "ebs-volume-tokens"
	bucketSnapshots   = "ebs-snapshots"
	bucketNodes       = "ebs-nodes"

	stateCreating = "creating"
	stateDeleting = "deleting"
	stateAvail    = "available"
	stateInUse    = "in-use"

	attaching = "attaching"
	attached  = "attached"
	detaching = "detaching"
)

type volumeRecord struct {
	cloud.Volume
	Token string `json:"token"`
}

type snapshotRecord struct {
	cloud.Snapshot
}

type nodeRecord struct {
	ID          string `json:"id"`
	Zone        string `json:"zone"`
	AttachLimit int    `json:"attachLimit"`
}

func (b *Backend) ebsDir(parts ...string) string {
	return filepath.Join(append([]string{b.dir, "ebs"}, parts...)...)
}

func (b *Backend) volumeFile(id string) string   { return b.ebsDir("volumes", id+".img") }
func (b *Backend) snapshotFile(id string) string { return b.ebsDir("snapshots", id+".img") }

// DeviceRoot is where the backend publishes device links of attached
// volumes; the node's device discovery looks there, as it looks in /dev
// on EC2.
func (b *Backend) DeviceRoot() string { return b.ebsDir("dev") }

func (b *Backend) deviceLink(volumeID string) string {
	return filepath.Join(b.DeviceRoot(), "disk", "by-id", cloud.EBSDeviceLink(volumeID))
}

func (b *Backend) lockVolume(id string) (func(), error) {
	return lockFile(b.ebsDir("locks", id))
}

func (b *Backend) getVolume(tx *bolt.Tx, id string) (volumeRecord, error) {
	v, err := store.Get[volumeRecord](tx, bucketVolumes, id)
	if errors.Is(err, store.ErrNotFound) {
		return v, fmt.Errorf("volume %s: %w", id, cloud.ErrNotFound)
	}
	return v, err
}

func (b *Backend) putVolume(tx *bolt.Tx, v volumeRecord) error {
	return store.Put(tx, bucketVolumes, v.ID, v)
}

// RegisterNode records a node and its zone, as EC2 knows its instances; the
// EBS node plugin calls it at start.
func (b *Backend) RegisterNode(ctx context.Context, id, zone string, attachLimit int) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		return store.Put(tx, bucketNodes, id, nodeRecord{ID: id, Zone: zone, AttachLimit: attachLimit})
	})
}

// DescribeInstance returns a registered node.
func (b *Backend) DescribeInstance(ctx context.Context, id string) (*cloud.Instance, error) {
	var n nodeRecord
	err := b.db.View(func(tx *bolt.Tx) (err error) {
		n, err = store.Get[nodeRecord](tx, bucketNodes, id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("node %s is not known to the local backend (no EBS node plugin registered it): %w", id, cloud.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &cloud.Instance{ID: n.ID, AvailabilityZone: n.Zone, Type: "local", AttachLimit: n.AttachLimit}, nil
}

// CreateVolume creates a sparse file of the size asked, or a copy of a
// snapshot grown to it, honouring ClientToken as EC2 does.
func (b *Backend) CreateVolume(ctx context.Context, in cloud.CreateVolumeInput) (*cloud.Volume, error) {
	if in.ClientToken == "" || in.SizeGiB <= 0 || in.AvailabilityZone == "" {
		return nil, fmt.Errorf("create volume: token, size and zone are required: %w", cloud.ErrInvalidArgument)
	}
	var rec volumeRecord
	err := b.db.Update(func(tx *bolt.Tx) error {
		if id, err := store.Get[string](tx, bucketVolumeToken, in.ClientToken); err == nil {
			existing, err := b.getVolume(tx, id)
			if err != nil {
				return err
			}
			if !sameVolumeRequest(existing.Volume, in) {
				return fmt.Errorf("client token was used for %s: %w", id, cloud.ErrParameterMismatch)
			}
			rec = existing
			return nil
		}
		if in.SnapshotID != "" {
			snap, err := store.Get[snapshotRecord](tx, bucketSnapshots, in.SnapshotID)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("snapshot %s: %w", in.SnapshotID, cloud.ErrNotFound)
			}
			if err != nil {
				return err
			}
			if snap.SizeGiB > in.SizeGiB {
				return fmt.Errorf("volume of %d GiB from snapshot %s of %d GiB: %w", in.SizeGiB, in.SnapshotID, snap.SizeGiB, cloud.ErrOutOfRange)
			}
		}
		rec = volumeRecord{Token: in.ClientToken, Volume: cloud.Volume{
			ID: "vol-" + randomHex(17), SizeGiB: in.SizeGiB, Type: in.Type, IOPS: in.IOPS, Throughput: in.Throughput,
			Encrypted: in.Encrypted, KMSKeyID: in.KMSKeyID, AvailabilityZone: in.AvailabilityZone,
			SnapshotID: in.SnapshotID, MultiAttach: in.MultiAttach, Tags: maps.Clone(in.Tags),
			State: stateCreating, CreateTime: time.Now().UTC(),
		}}
		if err := b.putVolume(tx, rec); err != nil {
			return err
		}
		return store.Put(tx, bucketVolumeToken, in.ClientToken, rec.ID)
	})
	if err != nil {
		return nil, fmt.Errorf("create volume: %w", err)
	}
	if rec.State == stateCreating {
		if rec, err = b.completeVolume(rec.ID); err != nil {
			return nil, err
		}
	}
	v := rec.Volume
	return &v, nil
}

func sameVolumeRequest(v cloud.Volume, in cloud.CreateVolumeInput) bool {
	return v.SizeGiB == in.SizeGiB && v.Type == in.Type && v.IOPS == in.IOPS && v.Throughput == in.Throughput &&
		v.Encrypted == in.Encrypted && v.KMSKeyID == in.KMSKeyID && v.AvailabilityZone == in.AvailabilityZone &&
		v.SnapshotID == in.SnapshotID && v.MultiAttach == in.MultiAttach && maps.Equal(v.Tags, in.Tags)
}

// completeVolume makes the volume's file and marks it available. The file
// is made under a temporary name first, so a crash before the record says
// available just makes it again.
func (b *Backend) completeVolume(id string) (volumeRecord, error) {
	unlock, err := b.lockVolume(id)
	if err != nil {
		return volumeRecord{}, err
	}
	defer unlock()
	var rec volumeRecord
	if err := b.db.View(func(tx *bolt.Tx) (err error) { rec, err = b.getVolume(tx, id); return err }); err != nil {
		return rec, err
	}
	if rec.State != stateCreating {
		return rec, nil
	}
	if err := b.makeVolumeFile(rec.Volume); err != nil {
		return rec, fmt.Errorf("create volume %s: %w", id, err)
	}
	rec.State = stateAvail
	return rec, b.db.Update(func(tx *bolt.Tx) error { return b.putVolume(tx, rec) })
}

func (b *Backend) makeVolumeFile(v cloud.Volume) error {
	path := b.volumeFile(v.ID)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".new"
	if v.SnapshotID != "" {
		if err := copySparse(tmp, b.snapshotFile(v.SnapshotID)); err != nil {
			return err
		}
	} else if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		return err
	}
	if err := os.Truncate(tmp, v.SizeGiB<<30); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// DescribeVolume returns one volume.
func (b *Backend) DescribeVolume(ctx context.Context, id string) (*cloud.Volume, error) {
	var rec volumeRecord
	if err := b.db.View(func(tx *bolt.Tx) (err error) { rec, err = b.getVolume(tx, id); return err }); err != nil {
		return nil, err
	}
	v := rec.Volume
	return &v, nil
}

// ListVolumes pages through volumes in ID order; the token is the last ID
// of the previous page.
func (b *Backend) ListVolumes(ctx context.Context, maxResults int, token string) (cloud.Page[*cloud.Volume], error) {
	var page cloud.Page[*cloud.Volume]
	if token != "" && !cloud.ValidVolumeID(token) {
		return page, fmt.Errorf("token %q: %w", token, cloud.ErrInvalidArgument)
	}
	err := b.db.View(func(tx *bolt.Tx) error {
		return store.List(tx, bucketVolumes, "", func(id string, r volumeRecord) error {
			if id <= token || r.State == stateDeleting {
				return nil
			}
			if maxResults > 0 && len(page.Items) == maxResults {
				page.NextToken = page.Items[len(page.Items)-1].ID
				return errStop
			}
			v := r.Volume
			page.Items = append(page.Items, &v)
			return nil
		})
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return page, err
}

var errStop = errors.New("stop")

// DeleteVolume deletes a detached volume and its file.
func (b *Backend) DeleteVolume(ctx context.Context, id string) error {
	unlock, err := b.lockVolume(id)
	if err != nil {
		return err
	}
	defer unlock()
	var rec volumeRecord
	err = b.db.Update(func(tx *bolt.Tx) (err error) {
		if rec, err = b.getVolume(tx, id); err != nil {
			return err
		}
		if len(rec.Attachments) > 0 {
			return fmt.Errorf("volume %s is attached to node %s: %w", id, rec.Attachments[0].NodeID, cloud.ErrInUse)
		}
		rec.State = stateDeleting
		return b.putVolume(tx, rec)
	})
	if err != nil {
		return err
	}
	return b.finishDelete(rec)
}

func (b *Backend) finishDelete(rec volumeRecord) error {
	if err := os.Remove(b.volumeFile(rec.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete volume %s: %w", rec.ID, err)
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		if err := store.Delete(tx, bucketVolumes, rec.ID); err != nil {
			return err
		}
		return store.Delete(tx, bucketVolumeToken, rec.Token)
	})
}

// AttachVolume attaches the volume's file as a loop device and publishes
// its device link. It enforces what EC2 enforces: same zone, one node at a
// time, and the node's attachment limit.
func (b *Backend) AttachVolume(ctx context.Context, volumeID, nodeID string) (string, error) {
	unlock, err := b.lockVolume(volumeID)
	if err != nil {
		return "", err
	}
	defer unlock()
	err = b.db.Update(func(tx *bolt.Tx) error {
		rec, err := b.getVolume(tx, volumeID)
		if err != nil {
			return err
		}
		node, err := store.Get[nodeRecord](tx, bucketNodes, nodeID)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("node %s: %w", nodeID, cloud.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if rec.State == stateCreating || rec.State == stateDeleting {
			return fmt.Errorf("volume %s is %s: %w", volumeID, rec.State, cloud.ErrInUse)
		}
		for _, a := range rec.Attachments {
			if a.NodeID == nodeID {
				return nil // already attached here; make sure below
			}
			if !rec.MultiAttach {
				return fmt.Errorf("volume %s is attached to node %s; detach it there first: %w", volumeID, a.NodeID, cloud.ErrInUse)
			}
		}
		if rec.AvailabilityZone != node.Zone {
			return fmt.Errorf("volume %s is in zone %s and node %s is in zone %s; EBS volumes attach only within their zone: %w", volumeID, rec.AvailabilityZone, nodeID, node.Zone, cloud.ErrInUse)
		}
		if node.AttachLimit > 0 {
			n := 0
			err := store.List(tx, bucketVolumes, "", func(_ string, v volumeRecord) error {
				for _, a := range v.Attachments {
					if a.NodeID == nodeID {
						n++
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if n >= node.AttachLimit {
				return fmt.Errorf("node %s already has %d volumes attached, its limit: %w", nodeID, n, cloud.ErrLimitExceeded)
			}
		}
		rec.Attachments = append(rec.Attachments, cloud.Attachment{NodeID: nodeID, State: attaching})
		rec.State = stateInUse
		return b.putVolume(tx, rec)
	})
	if err != nil {
		return "", err
	}
	return b.completeAttach(volumeID, nodeID)
}

// completeAttach attaches the loop device (reusing one already attached to
// the file) and the link; the caller holds the volume's lock.
func (b *Backend) completeAttach(volumeID, nodeID string) (string, error) {
	file := b.volumeFile(volumeID)
	devs, err := loop.Find(file)
	if err != nil {
		return "", err
	}
	dev := ""
	if len(devs) > 0 {
		dev = devs[0]
	} else if dev, err = loop.Attach(file); err != nil {
		return "", fmt.Errorf("attach volume %s: %w", volumeID, err)
	}
	link := b.deviceLink(volumeID)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return "", err
	}
	if cur, err := os.Readlink(link); err != nil || cur != dev {
		tmp := link + ".new"
		os.Remove(tmp)
		if err := os.Symlink(dev, tmp); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, link); err != nil {
			return "", err
		}
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		rec, err := b.getVolume(tx, volumeID)
		if err != nil {
			return err
		}
		for i := range rec.Attachments {
			if rec.Attachments[i].NodeID == nodeID {
				rec.Attachments[i].State, rec.Attachments[i].Device = attached, link
			}
		}
		return b.putVolume(tx, rec)
	})
	return link, err
}

// DetachVolume detaches the loop device and removes the link. A device
// still mounted is not detached (ErrInUse): the node must unstage first.
func (b *Backend) DetachVolume(ctx context.Context, volumeID, nodeID string) error {
	unlock, err := b.lockVolume(volumeID)
	if err != nil {
		return err
	}
	defer unlock()
	var found bool
	err = b.db.Update(func(tx *bolt.Tx) error {
		rec, err := b.getVolume(tx, volumeID)
		if err != nil {
			return err
		}
		for i, a := range rec.Attachments {
			if a.NodeID == nodeID || nodeID == "" {
				rec.Attachments[i].State = detaching
				found = true
			}
		}
		return b.putVolume(tx, rec)
	})
	if err != nil || !found {
		return err
	}
	return b.completeDetach(volumeID)
}

func (b *Backend) completeDetach(volumeID string) error {
	devs, err := loop.Find(b.volumeFile(volumeID))
	if err != nil {
		return err
	}
	for _, dev := range devs {
		if err := loop.Detach(dev); err != nil {
			if errors.Is(err, loop.ErrBusy) {
				return fmt.Errorf("volume %s: %v: %w", volumeID, err, cloud.ErrInUse)
			}
			return err
		}
	}
	if err := os.Remove(b.deviceLink(volumeID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		rec, err := b.getVolume(tx, volumeID)
		if err != nil {
			return err
		}
		rec.Attachments = slices.DeleteFunc(rec.Attachments, func(a cloud.Attachment) bool { return a.State == detaching })
		if len(rec.Attachments) == 0 {
			rec.State = stateAvail
		}
		return b.putVolume(tx, rec)
	})
}

// ResizeVolume grows the file and, if attached, the loop device with it.
func (b *Backend) ResizeVolume(ctx context.Context, volumeID string, sizeGiB int64) (int64, error) {
	unlock, err := b.lockVolume(volumeID)
	if err != nil {
		return 0, err
	}
	defer unlock()
	var rec volumeRecord
	if err := b.db.View(func(tx *bolt.Tx) (err error) { rec, err = b.getVolume(tx, volumeID); return err }); err != nil {
		return 0, err
	}
	if sizeGiB <= rec.SizeGiB {
		return rec.SizeGiB, nil
	}
	if err := os.Truncate(b.volumeFile(volumeID), sizeGiB<<30); err != nil {
		return 0, fmt.Errorf("grow volume %s: %w", volumeID, err)
	}
	devs, err := loop.Find(b.volumeFile(volumeID))
	if err != nil {
		return 0, err
	}
	for _, dev := range devs {
		if err := loop.Refresh(dev); err != nil {
			return 0, err
		}
	}
	rec.SizeGiB = sizeGiB
	rec.Modification = "completed"
	return sizeGiB, b.db.Update(func(tx *bolt.Tx) error { return b.putVolume(tx, rec) })
}

// ModifyVolume changes type and performance in the record; on this backend
// the device is as fast as the machine either way.
func (b *Backend) ModifyVolume(ctx context.Context, volumeID string, in cloud.ModifyVolumeInput) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		rec, err := b.getVolume(tx, volumeID)
		if err != nil {
			return err
		}
		if in.Type != "" {
			rec.Type = in.Type
		}
		rec.IOPS, rec.Throughput = in.IOPS, in.Throughput
		rec.Modification = "completed"
		return b.putVolume(tx, rec)
	})
}

// TagVolume adds or replaces tags.
func (b *Backend) TagVolume(ctx context.Context, volumeID string, tags map[string]string) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		rec, err := b.getVolume(tx, volumeID)
		if err != nil {
			return err
		}
		if rec.Tags == nil {
			rec.Tags = map[string]string{}
		}
		maps.Copy(rec.Tags, tags)
		return b.putVolume(tx, rec)
	})
}

// CreateSnapshot copies the volume's file at one point in time. If the
// volume is mounted on this machine its file system is frozen for the
// copy, so the snapshot is crash-consistent like an EBS snapshot.
func (b *Backend) CreateSnapshot(ctx context.Context, in cloud.CreateSnapshotInput) (*cloud.Snapshot, error) {
	unlock, err := b.lockVolume(in.VolumeID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var snap snapshotRecord
	err = b.db.Update(func(tx *bolt.Tx) error {
		v, err := b.getVolume(tx, in.VolumeID)
		if err != nil {
			return err
		}
		snap = snapshotRecord{cloud.Snapshot{
			ID: "snap-" + randomHex(17), VolumeID: v.ID, SizeGiB: v.SizeGiB, State: "pending",
			StartTime: time.Now().UTC(), Tags: maps.Clone(in.Tags),
		}}
		return store.Put(tx, bucketSnapshots, snap.ID, snap)
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", in.VolumeID, err)
	}
	if err := b.copySnapshot(snap); err != nil {
		return nil, err
	}
	snap.State = "completed"
	if err := b.db.Update(func(tx *bolt.Tx) error { return store.Put(tx, bucketSnapshots, snap.ID, snap) }); err != nil {
		return nil, err
	}
	s := snap.Snapshot
	return &s, nil
}

func (b *Backend) copySnapshot(snap snapshotRecord) error {
	if err := os.MkdirAll(b.ebsDir("snapshots"), 0o700); err != nil {
		return err
	}
	devs, err := loop.Find(b.volumeFile(snap.VolumeID))
	if err != nil {
		return err
	}
	for _, dev := range devs {
		mount := findMount(dev)
		if mount == "" {
			continue
		}
		thaw, err := freeze(mount)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", snap.VolumeID, err)
		}
		defer thaw()
		break
	}
	if err := copySparse(b.snapshotFile(snap.ID), b.volumeFile(snap.VolumeID)); err != nil {
		return fmt.Errorf("snapshot %s: %w", snap.VolumeID, err)
	}
	return nil
}

// findMount returns a path into the file system mounted from dev, or "".
// A controller running in a container does not see the node plugin's
// mounts in its own mount namespace; when it shares the host's PIDs it
// looks through any process whose mount namespace holds the mount and
// whose root it may enter (the node plugin's, the kubelet's).
func findMount(dev string) string {
	if mps, err := loop.MountPoints(dev); err == nil && len(mps) > 0 {
		return mps[0]
	}
	seen := map[string]bool{nsOf("/proc/self"): true}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		proc := "/proc/" + e.Name()
		ns := nsOf(proc)
		if ns == "" || seen[ns] {
			continue
		}
		seen[ns] = true
		mps, err := loop.MountPointsIn(proc+"/mountinfo", dev)
		if err != nil || len(mps) == 0 {
			continue
		}
		if p := proc + "/root" + mps[0]; dirExists(p) {
			return p
		}
	}
	return ""
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func nsOf(proc string) string {
	ns, err := os.Readlink(proc + "/ns/mnt")
	if err != nil {
		return ""
	}
	return ns
}

// DeleteSnapshot deletes a snapshot and its image.
func (b *Backend) DeleteSnapshot(ctx context.Context, id string) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		if _, err := store.Get[snapshotRecord](tx, bucketSnapshots, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("snapshot %s: %w", id, cloud.ErrNotFound)
			}
			return err
		}
		return store.Delete(tx, bucketSnapshots, id)
	})
	if err != nil {
		return err
	}
	if err := os.Remove(b.snapshotFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// DescribeSnapshot returns one snapshot.
func (b *Backend) DescribeSnapshot(ctx context.Context, id string) (*cloud.Snapshot, error) {
	var rec snapshotRecord
	err := b.db.View(func(tx *bolt.Tx) (err error) {
		rec, err = store.Get[snapshotRecord](tx, bucketSnapshots, id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("snapshot %s: %w", id, cloud.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	s := rec.Snapshot
	return &s, nil
}

// ListSnapshots pages through snapshots in ID order.
func (b *Backend) ListSnapshots(ctx context.Context, f ebs.SnapshotFilter, maxResults int, token string) (cloud.Page[*cloud.Snapshot], error) {
	var page cloud.Page[*cloud.Snapshot]
	if token != "" && !cloud.ValidSnapshotID(token) {
		return page, fmt.Errorf("token %q: %w", token, cloud.ErrInvalidArgument)
	}
	err := b.db.View(func(tx *bolt.Tx) error {
		return store.List(tx, bucketSnapshots, "", func(id string, r snapshotRecord) error {
			switch {
			case id <= token,
				f.SnapshotID != "" && id != f.SnapshotID,
				f.VolumeID != "" && r.VolumeID != f.VolumeID:
				return nil
			}
			for k, v := range f.Tags {
				if r.Tags[k] != v {
					return nil
				}
			}
			if maxResults > 0 && len(page.Items) == maxResults {
				page.NextToken = page.Items[len(page.Items)-1].ID
				return errStop
			}
			s := r.Snapshot
			page.Items = append(page.Items, &s)
			return nil
		})
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return page, err
}

// VerifyDevice checks that dev is the loop device of the volume's file.
func (b *Backend) VerifyDevice(ctx context.Context, volumeID, dev string) error {
	backing, err := loop.BackingFile(dev)
	if err != nil {
		return err
	}
	if want := b.volumeFile(volumeID); backing != want {
		if backing == "" {
			return fmt.Errorf("%s is not attached to any file", dev)
		}
		return fmt.Errorf("%s is backed by %s, the volume's file is %s", dev, backing, want)
	}
	return nil
}

// repairVolumes finishes what a crash interrupted and re-attaches volumes
// whose loop devices vanished (after a reboot).
func (b *Backend) repairVolumes(ctx context.Context) error {
	var recs []volumeRecord
	var snaps []snapshotRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		if err := store.List(tx, bucketVolumes, "", func(_ string, r volumeRecord) error { recs = append(recs, r); return nil }); err != nil {
			return err
		}
		return store.List(tx, bucketSnapshots, "", func(_ string, r snapshotRecord) error {
			if r.State == "pending" {
				snaps = append(snaps, r)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := b.repairVolume(r.ID); err != nil {
			return fmt.Errorf("volume %s: %w", r.ID, err)
		}
	}
	for _, s := range snaps {
		unlock, err := b.lockVolume(s.VolumeID)
		if err != nil {
			return err
		}
		err = b.copySnapshot(s)
		if err == nil {
			s.State = "completed"
			err = b.db.Update(func(tx *bolt.Tx) error { return store.Put(tx, bucketSnapshots, s.ID, s) })
		}
		unlock()
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", s.ID, err)
		}
	}
	return nil
}

func (b *Backend) repairVolume(id string) error {
	unlock, err := b.lockVolume(id)
	if err != nil {
		return err
	}
	var rec volumeRecord
	err = b.db.View(func(tx *bolt.Tx) (err error) { rec, err = b.getVolume(tx, id); return err })
	unlock()
	if errors.Is(err, cloud.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	switch rec.State {
	case stateCreating:
		_, err := b.completeVolume(id)
		return err
	case stateDeleting:
		return b.finishDelete(rec)
	}
	unlock, err = b.lockVolume(id)
	if err != nil {
		return err
	}
	defer unlock()
	for _, a := range rec.Attachments {
		switch a.State {
		case attaching, attached:
			if _, err := b.completeAttach(id, a.NodeID); err != nil {
				return err
			}
		case detaching:
			if err := b.completeDetach(id); err != nil && !errors.Is(err, cloud.ErrInUse) {
				return err
			}
		}
	}
	return nil
}

// VolumeFile is the file behind a volume.
func (b *Backend) VolumeFile(id string) string { return b.volumeFile(id) }
