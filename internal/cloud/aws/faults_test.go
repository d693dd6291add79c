package aws_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/ec2csi/ec2csi/internal/awsfake"
	"github.com/ec2csi/ec2csi/internal/cloud"
	awscloud "github.com/ec2csi/ec2csi/internal/cloud/aws"
	"github.com/ec2csi/ec2csi/internal/ebs"
	"github.com/ec2csi/ec2csi/internal/efs"
)

// faults are the issue's: 30% of calls throttled, 5% of answers lost after
// the work was done.
var faults = awsfake.Faults{ThrottleRate: 0.3, LostResponseRate: 0.05}

// faultOptions are fastOptions with the SDK's standard retry mode. Random
// throttling that does not depend on the request rate is a worst case for
// the adaptive mode, which takes every throttle as a sign to send slower:
// it converges on its minimum rate and these tests would take minutes.
// What they check, that retries under throttling and lost answers never
// duplicate or lose a volume, does not depend on the mode.
func faultOptions(m *awscloud.Metrics) awscloud.Options {
	o := fastOptions(m)
	o.Retry.Standard = true
	return o
}

// TestEFSCreateVolumeUnderFaults provisions 200 volumes at once through the
// real EFS controller while the API throttles and loses answers. Every
// volume must end up created (a sidecar retries retryable failures), and
// the file system must hold exactly 200 access points with 200 distinct
// GIDs: no duplicate from a retried create, no GID handed out twice.
func TestEFSCreateVolumeUnderFaults(t *testing.T) {
	srv := startFake(t, awsfake.Options{Seed: 11})
	fsID, err := srv.AddFileSystem(awsfake.FileSystemSpec{Name: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	m := awscloud.NewMetrics(nil)
	cl := awscloud.NewEFS(srv.AWSConfig(), faultOptions(m))
	ctrl := efs.NewController(efs.Options{Name: "efs.ec2csi.io"}, cl, nil)
	if err := srv.SetFaults(faults); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 3*time.Minute)

	const n = 200
	var wg sync.WaitGroup
	var retried atomic.Int64
	handles := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r, err := callWithRetries(10, func() error {
				resp, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
					Name:               fmt.Sprintf("pvc-%04d", i),
					VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)},
					Parameters:         map[string]string{"provisioningMode": "efs-ap", "fileSystemId": fsID},
				})
				if err == nil {
					handles[i] = resp.GetVolume().GetVolumeId()
				}
				return err
			})
			retried.Add(int64(r))
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("volume %d: %v", i, err)
		}
	}
	srv.SetFaults(awsfake.Faults{})

	aps := srv.AccessPointIDs(fsID)
	gids := map[int64]string{}
	err = cl.ListAccessPoints(ctx, fsID, func(page []*cloud.AccessPoint) error {
		for _, ap := range page {
			if other, dup := gids[ap.PosixUser.GID]; dup {
				t.Errorf("GID %d given to %s and %s", ap.PosixUser.GID, other, ap.ID)
			}
			gids[ap.PosixUser.GID] = ap.ID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(aps) != n || len(gids) != n {
		t.Errorf("%d access points with %d distinct GIDs, want %d and %d", len(aps), len(gids), n, n)
	}
	seen := map[string]bool{}
	for _, h := range handles {
		if seen[h] {
			t.Errorf("two volumes got handle %s", h)
		}
		seen[h] = true
	}
	st := srv.Stats("CreateAccessPoint")
	t.Logf("CreateAccessPoint: %d requests, %d throttled, %d answers lost; %d CreateVolume calls retried by the test; metrics: %v throttled",
		st.Calls, st.Throttled, st.LostResponses, retried.Load(), m.Throttled("CreateAccessPoint"))
	if st.Throttled == 0 || st.LostResponses == 0 {
		t.Errorf("the faults did not happen: %+v", st)
	}
	if got := m.Throttled("CreateAccessPoint"); got != float64(st.Throttled) {
		t.Errorf("metrics count %v throttled CreateAccessPoint requests, the fake %d", got, st.Throttled)
	}
}

// TestEBSCreateVolumeUnderFaults does the same for 100 EBS volumes: each
// created once, none leaked by a retried CreateVolume.
func TestEBSCreateVolumeUnderFaults(t *testing.T) {
	srv := startFake(t, awsfake.Options{Seed: 12})
	m := awscloud.NewMetrics(nil)
	cl := awscloud.NewEBS(srv.AWSConfig(), faultOptions(m), nil)
	roots := map[string]bool{}
	for _, id := range srv.VolumeIDs() {
		roots[id] = true // the instance's root volume
	}
	ctrl := ebs.NewController(ebs.Options{Name: "ebs.ec2csi.io", Zone: testZone}, cl)
	if err := srv.SetFaults(faults); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 3*time.Minute)

	const n = 100
	var wg sync.WaitGroup
	var retried atomic.Int64
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r, err := callWithRetries(10, func() error {
				resp, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
					Name:               fmt.Sprintf("pvc-%04d", i),
					CapacityRange:      &csi.CapacityRange{RequiredBytes: 1 << 30},
					VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)},
					Parameters:         map[string]string{"type": "gp3"},
				})
				if err == nil {
					ids[i] = resp.GetVolume().GetVolumeId()
				}
				return err
			})
			retried.Add(int64(r))
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("volume %d: %v", i, err)
		}
	}
	srv.SetFaults(awsfake.Faults{})
	var all []string
	for _, id := range srv.VolumeIDs() {
		if !roots[id] {
			all = append(all, id)
		}
	}
	if len(all) != n {
		t.Errorf("the fake holds %d volumes, want %d", len(all), n)
	}
	made := map[string]bool{}
	for _, id := range ids {
		if made[id] {
			t.Errorf("two CreateVolume calls returned %s", id)
		}
		made[id] = true
	}
	for _, id := range all {
		if !made[id] {
			t.Errorf("volume %s was leaked: no CreateVolume returned it", id)
		}
	}
	st := srv.Stats("CreateVolume")
	t.Logf("CreateVolume: %d requests, %d throttled, %d answers lost; %d calls retried by the test; DescribeVolumes: %d requests",
		st.Calls, st.Throttled, st.LostResponses, retried.Load(), srv.Calls("DescribeVolumes"))
	if st.Throttled == 0 || st.LostResponses == 0 {
		t.Errorf("the faults did not happen: %+v", st)
	}
}

func mountCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

// TestEFSStrictTokens: users report that real EFS refuses any reuse of a
// client token, even an identical retry (the fake's StrictAccessPointTokens).
// A create whose answer is lost then comes back as AccessPointAlreadyExists;
// the driver lists the file system again and must recognise its access
// point by the token this package folded the file system into.
func TestEFSStrictTokens(t *testing.T) {
	srv := startFake(t, awsfake.Options{Seed: 13, StrictAccessPointTokens: true})
	fsID, err := srv.AddFileSystem(awsfake.FileSystemSpec{Name: "strict"})
	if err != nil {
		t.Fatal(err)
	}
	cl := awscloud.NewEFS(srv.AWSConfig(), faultOptions(nil))
	ctrl := efs.NewController(efs.Options{Name: "efs.ec2csi.io"}, cl, nil)
	srv.SetFaults(awsfake.Faults{LostResponseRate: 0.3, Operations: []string{"CreateAccessPoint"}})
	ctx := testCtx(t, time.Minute)
	const n = 40
	for i := range n {
		_, err := callWithRetries(5, func() error {
			_, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
				Name:               fmt.Sprintf("pvc-strict-%02d", i),
				VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)},
				Parameters:         map[string]string{"provisioningMode": "efs-ap", "fileSystemId": fsID},
			})
			return err
		})
		if err != nil {
			t.Errorf("volume %d: %v", i, err)
		}
	}
	if got := len(srv.AccessPointIDs(fsID)); got != n {
		t.Errorf("%d access points, want %d", got, n)
	}
	st := srv.Stats("CreateAccessPoint")
	t.Logf("CreateAccessPoint: %d requests, %d answers lost, %d refused as already existing", st.Calls, st.LostResponses, st.APIErrors)
	if st.LostResponses == 0 || st.APIErrors == 0 {
		t.Errorf("no lost answer was retried into AccessPointAlreadyExists: %+v", st)
	}
}
