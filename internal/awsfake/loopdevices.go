package awsfake

import (
	"errors"
	"fmt"

	"github.com/ec2csi/ec2csi/internal/loop"
)

// LoopDevices backs volumes with sparse files in Dir, as FileDevices does,
// and attaches each as a loop device, so that an attached volume is a real
// block device a node can format and mount. It needs root and
// /dev/loop-control.
type LoopDevices struct {
	files *FileDevices
}

var _ SnapshotDevices = (*LoopDevices)(nil)

// NewLoopDevices keeps the backing files in dir.
func NewLoopDevices(dir string) *LoopDevices {
	return &LoopDevices{files: &FileDevices{Dir: dir}}
}

func (d *LoopDevices) backing() *FileDevices { return d.files }

// Attach attaches the volume's file (created on first use) as a loop
// device, reusing one that is already attached to it.
func (d *LoopDevices) Attach(volumeID string, sizeBytes int64) (string, error) {
	file, err := d.backing().Attach(volumeID, sizeBytes)
	if err != nil {
		return "", err
	}
	if devs, err := loop.Find(file); err == nil && len(devs) > 0 {
		return devs[0], nil
	}
	dev, err := loop.Attach(file)
	if err != nil {
		return "", fmt.Errorf("loop device for %s: %w", volumeID, err)
	}
	return dev, nil
}

// Detach detaches the volume's loop devices. One still mounted stays
// attached and the error says so, as a real detach hangs while the
// instance still uses the volume.
func (d *LoopDevices) Detach(volumeID string) error {
	devs, err := loop.Find(d.backing().volumePath(volumeID))
	if err != nil {
		return fmt.Errorf("find loop devices of %s: %w", volumeID, err)
	}
	var errs []error
	for _, dev := range devs {
		if err := loop.Detach(dev); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Resize grows the file and tells attached loop devices about it.
func (d *LoopDevices) Resize(volumeID string, sizeBytes int64) error {
	if err := d.backing().Resize(volumeID, sizeBytes); err != nil {
		return err
	}
	devs, err := loop.Find(d.backing().volumePath(volumeID))
	if err != nil {
		return fmt.Errorf("find loop devices of %s: %w", volumeID, err)
	}
	for _, dev := range devs {
		if err := loop.Refresh(dev); err != nil {
			return err
		}
	}
	return nil
}

// Delete detaches what is left and removes the file.
func (d *LoopDevices) Delete(volumeID string) error {
	if err := d.Detach(volumeID); err != nil {
		return err
	}
	return d.backing().Delete(volumeID)
}

// Snapshot copies the backing file.
func (d *LoopDevices) Snapshot(volumeID, snapshotID string) error {
	return d.backing().Snapshot(volumeID, snapshotID)
}

// Restore fills a new volume's file from a snapshot.
func (d *LoopDevices) Restore(snapshotID, volumeID string, sizeBytes int64) error {
	return d.backing().Restore(snapshotID, volumeID, sizeBytes)
}

// DeleteSnapshot removes a snapshot's file.
func (d *LoopDevices) DeleteSnapshot(snapshotID string) error {
	return d.backing().DeleteSnapshot(snapshotID)
}
