package awsfake

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Devices backs attached EBS volumes with something a node can open. The
// fake calls it under its lock as attachments and modifications progress;
// implementations must keep a volume's data across Detach and Attach
// until Delete.
type Devices interface {
	// Attach makes the volume's device exist and returns its path, creating
	// a blank device of sizeBytes the first time.
	Attach(volumeID string, sizeBytes int64) (devicePath string, err error)
	// Detach takes the device away; the data stays.
	Detach(volumeID string) error
	// Resize grows the volume to sizeBytes, attached or not.
	Resize(volumeID string, sizeBytes int64) error
	// Delete drops the volume's data for good.
	Delete(volumeID string) error
}

// SnapshotDevices is implemented by Devices that can also keep snapshots,
// so that a volume restored from a snapshot holds the snapshot's data.
type SnapshotDevices interface {
	// Snapshot copies the volume's current data into snapshotID.
	Snapshot(volumeID, snapshotID string) error
	// Restore fills a new volume of sizeBytes from snapshotID.
	Restore(snapshotID, volumeID string, sizeBytes int64) error
	// DeleteSnapshot drops the snapshot's data.
	DeleteSnapshot(snapshotID string) error
}

// NVMeLinkName is the /dev/disk/by-id name udev gives an EBS volume on a
// Nitro instance: the volume ID without its dash after a fixed prefix.
func NVMeLinkName(volumeID string) string {
	return "nvme-Amazon_Elastic_Block_Store_" + strings.ReplaceAll(volumeID, "-", "")
}

// DeviceLink is where the fake publishes the by-id link of an attached
// volume, under Options.DevRoot. It is empty without Devices.
func (f *Fake) DeviceLink(volumeID string) string {
	if f.opts.Devices == nil {
		return ""
	}
	return filepath.Join(f.opts.DevRoot, "disk", "by-id", NVMeLinkName(volumeID))
}

func (f *Fake) deviceAttachLocked(v *volume) error {
	if f.opts.Devices == nil || v.root || anyAttached(v) {
		return nil
	}
	dev, err := f.opts.Devices.Attach(v.id, v.sizeGiB<<30)
	if err != nil {
		return fmt.Errorf("attach device of %s: %w", v.id, err)
	}
	link := f.DeviceLink(v.id)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("publish device link of %s: %w", v.id, err)
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replace device link of %s: %w", v.id, err)
	}
	if err := os.Symlink(dev, link); err != nil {
		return fmt.Errorf("publish device link of %s: %w", v.id, err)
	}
	return nil
}

// deviceDetachLocked takes the device away; the link goes only once the
// device has, so a node never sees a link to nothing.
func (f *Fake) deviceDetachLocked(v *volume) error {
	if f.opts.Devices == nil || v.root {
		return nil
	}
	if err := f.opts.Devices.Detach(v.id); err != nil {
		return fmt.Errorf("detach device of %s: %w", v.id, err)
	}
	if err := os.Remove(f.DeviceLink(v.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		f.logf("remove device link of %s: %v", v.id, err)
	}
	return nil
}

// The hooks below run inside transitions nobody waits on, so they log
// their failures instead of returning them.

func (f *Fake) deviceResizeLocked(v *volume) {
	if f.opts.Devices == nil || v.root {
		return
	}
	if err := f.opts.Devices.Resize(v.id, v.sizeGiB<<30); err != nil {
		f.logf("resize device of %s: %v", v.id, err)
	}
}

func (f *Fake) deviceDeleteLocked(v *volume) {
	if f.opts.Devices == nil || v.root {
		return
	}
	if err := f.opts.Devices.Delete(v.id); err != nil {
		f.logf("delete device of %s: %v", v.id, err)
	}
}

func (f *Fake) deviceSnapshotLocked(v *volume, s *snapshot) {
	sd, ok := f.opts.Devices.(SnapshotDevices)
	if !ok || v.root {
		return
	}
	if err := sd.Snapshot(v.id, s.id); err != nil {
		f.logf("snapshot device of %s: %v", v.id, err)
	}
}

func (f *Fake) deviceRestoreLocked(v *volume) {
	sd, ok := f.opts.Devices.(SnapshotDevices)
	if !ok {
		return
	}
	if err := sd.Restore(v.snapshotID, v.id, v.sizeGiB<<30); err != nil {
		f.logf("restore %s into %s: %v", v.snapshotID, v.id, err)
	}
}

func (f *Fake) deviceDeleteSnapshotLocked(s *snapshot) {
	sd, ok := f.opts.Devices.(SnapshotDevices)
	if !ok {
		return
	}
	if err := sd.DeleteSnapshot(s.id); err != nil {
		f.logf("delete snapshot data of %s: %v", s.id, err)
	}
}

// FileDevices backs volumes with sparse regular files in Dir: the
// "device" is the file itself. It needs no privileges, so tests can check
// the device links and the data a volume keeps; a node that needs a block
// device wraps the file in a loop device.
type FileDevices struct {
	Dir string

	mu sync.Mutex
}

var _ SnapshotDevices = (*FileDevices)(nil)

func (d *FileDevices) volumePath(id string) string {
	return filepath.Join(d.Dir, id+".img")
}

func (d *FileDevices) snapshotPath(id string) string {
	return filepath.Join(d.Dir, "snapshots", id+".img")
}

// Attach creates the volume's file on first use and returns its path.
func (d *FileDevices) Attach(volumeID string, sizeBytes int64) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.volumePath(volumeID)
	if err := growFile(p, sizeBytes); err != nil {
		return "", fmt.Errorf("file device %s: %w", volumeID, err)
	}
	return p, nil
}

// Detach keeps the file: the volume's data outlives its attachment.
func (d *FileDevices) Detach(string) error { return nil }

// Resize grows the volume's file.
func (d *FileDevices) Resize(volumeID string, sizeBytes int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := growFile(d.volumePath(volumeID), sizeBytes); err != nil {
		return fmt.Errorf("resize file device %s: %w", volumeID, err)
	}
	return nil
}

// Delete removes the volume's file.
func (d *FileDevices) Delete(volumeID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Remove(d.volumePath(volumeID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete file device %s: %w", volumeID, err)
	}
	return nil
}

// Snapshot copies the volume's file, holes kept as holes. A volume never
// attached has no file, and its snapshot is empty.
func (d *FileDevices) Snapshot(volumeID, snapshotID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	src, dst := d.volumePath(volumeID), d.snapshotPath(snapshotID)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("snapshot %s: %w", snapshotID, err)
	}
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := sparseCopy(src, dst); err != nil {
		return fmt.Errorf("snapshot %s of %s: %w", snapshotID, volumeID, err)
	}
	return nil
}

// Restore copies a snapshot's file into a new volume and grows it.
func (d *FileDevices) Restore(snapshotID, volumeID string, sizeBytes int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	src, dst := d.snapshotPath(snapshotID), d.volumePath(volumeID)
	if _, err := os.Stat(src); err == nil {
		if err := sparseCopy(src, dst); err != nil {
			return fmt.Errorf("restore %s into %s: %w", snapshotID, volumeID, err)
		}
	}
	if err := growFile(dst, sizeBytes); err != nil {
		return fmt.Errorf("restore %s into %s: %w", snapshotID, volumeID, err)
	}
	return nil
}

// DeleteSnapshot removes a snapshot's file.
func (d *FileDevices) DeleteSnapshot(snapshotID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Remove(d.snapshotPath(snapshotID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete snapshot file %s: %w", snapshotID, err)
	}
	return nil
}

// growFile creates p if needed and makes it at least size bytes long.
func growFile(p string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	fh, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	st, err := fh.Stat()
	if err == nil && st.Size() < size {
		err = fh.Truncate(size)
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

// Linux lseek whence values that find data and holes in sparse files.
const (
	seekData = 3
	seekHole = 4
)

// sparseCopy copies src to dst reading only the data regions, so a
// mostly empty gigabyte volume copies in no time.
func sparseCopy(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if err := out.Truncate(st.Size()); err != nil {
		return err
	}
	var off int64
	for off < st.Size() {
		start, err := in.Seek(off, seekData)
		if err != nil {
			// No data after off (ENXIO), or no SEEK_DATA support: in the
			// latter case fall back to a plain copy of the rest.
			if off == 0 && !isNoData(err) {
				_, err = in.Seek(0, io.SeekStart)
				if err == nil {
					_, err = io.Copy(out, in)
				}
				return err
			}
			return nil
		}
		end, err := in.Seek(start, seekHole)
		if err != nil {
			return err
		}
		if _, err := in.Seek(start, io.SeekStart); err != nil {
			return err
		}
		if _, err := out.Seek(start, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyN(out, in, end-start); err != nil {
			return err
		}
		off = end
	}
	return nil
}

func isNoData(err error) bool {
	return errors.Is(err, syscall.ENXIO)
}
