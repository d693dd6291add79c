// Package sanityconfig is the csi-sanity configuration of each driver,
// shared by the sanity runs on every backend (scripts/upstream-sanity.sh
// passes the same values to the csi-sanity binary). It is a package of its
// own so that only sanity tests pull in csi-test and Ginkgo.
package sanityconfig

import (
	"path/filepath"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
)

// base is sanity's defaults (IdempotentCount included) with the paths
// under dir.
func base(address, dir string) sanity.TestConfig {
	c := sanity.NewTestConfig()
	c.Address = address
	c.TargetPath = filepath.Join(dir, "target")
	c.StagingPath = filepath.Join(dir, "staging")
	return c
}

// EFS provisions access points on the file system fsID.
func EFS(address, dir, fsID string) sanity.TestConfig {
	c := base(address, dir)
	c.TestVolumeParameters = map[string]string{"provisioningMode": "efs-ap", "fileSystemId": fsID}
	return c
}

// EBS provisions 4 GiB gp3 volumes, expands them to 6 GiB, modifies them
// to IOPS and throughput a 4 GiB gp3 volume allows (3,000 is its ceiling
// below 6 GiB), and runs the opt-in attach-limit spec.
func EBS(address, dir string) sanity.TestConfig {
	c := base(address, dir)
	c.TestVolumeParameters = map[string]string{"type": "gp3"}
	c.TestVolumeMutableParameters = map[string]string{"iops": "3000", "throughput": "200"}
	c.TestNodeVolumeAttachLimit = true
	c.TestVolumeSize = 4 << 30
	c.TestVolumeExpandSize = 6 << 30
	return c
}
