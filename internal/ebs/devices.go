package ebs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ec2csi/ec2csi/internal/cloud"
)

// LinkDevices finds attached volumes by the stable links udev makes for
// EBS NVMe devices, <Root>/disk/by-id/nvme-Amazon_Elastic_Block_Store_volX,
// never by guessing /dev names.
type LinkDevices struct {
	// Root is the device directory, /dev on a real node.
	Root string
	// VerifyDevice checks a device's identity; nil means the NVMe serial
	// check that works on EC2.
	VerifyDevice func(ctx context.Context, volumeID, dev string) error
}

// Find resolves the volume's link. Without one (Xen instances, which have
// no NVMe), it falls back to the device name the controller attached the
// volume as, and its /dev/xvd spelling.
func (d LinkDevices) Find(ctx context.Context, volumeID, hint string) (string, error) {
	link := filepath.Join(d.Root, "disk", "by-id", cloud.EBSDeviceLink(volumeID))
	dev, err := filepath.EvalSymlinks(link)
	if err == nil {
		return dev, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("resolve %s: %w", link, err)
	}
	if hint != "" {
		for _, cand := range []string{hint, strings.Replace(hint, "/dev/sd", "/dev/xvd", 1)} {
			if _, err := os.Stat(cand); err == nil {
				return cand, nil
			}
		}
	}
	return "", fmt.Errorf("no device link %s: %w", link, cloud.ErrNotFound)
}

// Verify checks the device's identity.
func (d LinkDevices) Verify(ctx context.Context, volumeID, dev string) error {
	if d.VerifyDevice != nil {
		return d.VerifyDevice(ctx, volumeID, dev)
	}
	return verifyNVMeSerial(volumeID, dev)
}

// verifyNVMeSerial compares the NVMe controller's serial with the volume
// ID. Non-NVMe devices (Xen) carry no serial and cannot be checked.
func verifyNVMeSerial(volumeID, dev string) error {
	name := filepath.Base(dev)
	if !strings.HasPrefix(name, "nvme") {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join("/sys/class/block", name, "device", "serial"))
	if err != nil {
		return fmt.Errorf("read NVMe serial of %s: %w", dev, err)
	}
	if got, want := strings.TrimSpace(string(raw)), cloud.NVMeSerial(volumeID); got != want {
		return fmt.Errorf("%s has NVMe serial %s, the volume's is %s", dev, got, want)
	}
	return nil
}
