package aws_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/ec2csi/ec2csi/internal/awsfake"
	"github.com/ec2csi/ec2csi/internal/cloud"
	awscloud "github.com/ec2csi/ec2csi/internal/cloud/aws"
	"github.com/ec2csi/ec2csi/internal/ebs"
)

// TestConcurrentAttachesShareDescribeCalls attaches 100 volumes at once
// through the controller, 25 to each of four instances, and checks that
// the waits share DescribeVolumes calls (the goal is at most 0.2
// a attach) and that no two volumes get one device name on an instance.
func TestConcurrentAttachesShareDescribeCalls(t *testing.T) {
	srv := startFake(t, awsfake.Options{Seed: 4})
	instances := []string{testInstance}
	for i := 1; i < 4; i++ {
		id := fmt.Sprintf("i-0123456789abcdef%d", i)
		if err := srv.AddInstance(id, testZone, "m5.large"); err != nil {
			t.Fatal(err)
		}
		instances = append(instances, id)
	}
	var vols []string
	for range 100 {
		id, err := srv.AddVolume(awsfake.VolumeSpec{Zone: testZone, SizeGiB: 1})
		if err != nil {
			t.Fatal(err)
		}
		vols = append(vols, id)
	}
	cl := awscloud.NewEBS(srv.AWSConfig(), fastOptions(nil), nil)
	ctrl := ebs.NewController(ebs.Options{Name: "ebs.ec2csi.io", Zone: testZone}, cl)
	ctx := testCtx(t, time.Minute)
	srv.ResetStats()

	devices := make([]string, len(vols))
	var wg sync.WaitGroup
	errs := make([]error, len(vols))
	for i, v := range vols {
		wg.Go(func() {
			resp, err := ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{
				VolumeId: v, NodeId: instances[i%4], VolumeCapability: mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER),
			})
			errs[i], devices[i] = err, resp.GetPublishContext()[ebs.DevicePathKey]
		})
	}
	wg.Wait()
	used := map[string]string{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("attach %s: %v", vols[i], err)
		}
		key := instances[i%4] + devices[i]
		if other, dup := used[key]; dup {
			t.Errorf("%s and %s both attached as %s", other, vols[i], key)
		}
		used[key] = vols[i]
		if state, att, _ := srv.VolumeState(vols[i]); state != "in-use" || len(att) != 1 {
			t.Errorf("%s is %s attached to %v", vols[i], state, att)
		}
	}
	perAttach := float64(srv.Calls("DescribeVolumes")) / float64(len(vols))
	t.Logf("DescribeVolumes %d, DescribeInstances %d, AttachVolume %d for %d attaches: %.3f describe calls per attach",
		srv.Calls("DescribeVolumes"), srv.Calls("DescribeInstances"), srv.Calls("AttachVolume"), len(vols), perAttach)
	if perAttach > 0.2 {
		t.Errorf("%.3f DescribeVolumes calls per attach, want at most 0.2", perAttach)
	}
	if n := srv.Calls("AttachVolume"); n != len(vols) {
		t.Errorf("%d AttachVolume calls for %d volumes", n, len(vols))
	}

	// Publishing again is idempotent and answers the same device.
	resp, err := ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{
		VolumeId: vols[0], NodeId: instances[0], VolumeCapability: mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER),
	})
	if err != nil || resp.GetPublishContext()[ebs.DevicePathKey] != devices[0] {
		t.Errorf("publishing again: %v, %v; want device %s", resp, err, devices[0])
	}
	// Another node cannot have it.
	_, err = cl.AttachVolume(ctx, vols[0], instances[1])
	if !errors.Is(err, cloud.ErrInUse) {
		t.Errorf("attaching to a second node: %v, want ErrInUse", err)
	}
	// Detach everything, concurrently, again sharing the waits.
	srv.ResetStats()
	for i, v := range vols {
		wg.Go(func() { errs[i] = cl.DetachVolume(ctx, v, instances[i%4]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("detach %s: %v", vols[i], err)
		}
		if state, _, _ := srv.VolumeState(vols[i]); state != "available" {
			t.Errorf("%s is %s after detach", vols[i], state)
		}
	}
	t.Logf("detaching: DescribeVolumes %d for %d detaches", srv.Calls("DescribeVolumes"), len(vols))
	// Detaching what is not attached is success.
	if err := cl.DetachVolume(ctx, vols[0], instances[0]); err != nil {
		t.Errorf("detaching a detached volume: %v", err)
	}
}

// TestAttachStuckIsDetached: an attachment that stays "attaching" past the
// bound is detached and the attach fails with a retryable error; the retry
// then attaches.
func TestAttachStuckIsDetached(t *testing.T) {
	srv := startFake(t, awsfake.Options{Seed: 5, Delays: &awsfake.Delays{
		Default: awsfake.Delay{Max: 10 * time.Millisecond},
		Per:     map[awsfake.Transition]awsfake.Delay{awsfake.VolumeAttach: {Min: time.Hour, Max: time.Hour}},
	}})
	vol, err := srv.AddVolume(awsfake.VolumeSpec{Zone: testZone})
	if err != nil {
		t.Fatal(err)
	}
	o := fastOptions(nil)
	o.Waits.AttachStuckAfter = 300 * time.Millisecond
	cl := awscloud.NewEBS(srv.AWSConfig(), o, nil)
	ctx := testCtx(t, time.Minute)
	start := time.Now()
	_, err = cl.AttachVolume(ctx, vol, testInstance)
	if !errors.Is(err, cloud.ErrUnavailable) || !strings.Contains(err.Error(), "detached") {
		t.Fatalf("stuck attach: %v, want ErrUnavailable saying it was detached", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to give up", d)
	}
	if srv.Calls("DetachVolume") != 1 {
		t.Errorf("%d DetachVolume calls, want 1", srv.Calls("DetachVolume"))
	}
	t.Logf("stuck attach: %v", err)

	srv.SetDelays(awsfake.Delays{Default: awsfake.Delay{Max: 10 * time.Millisecond}})
	var dev string
	for range 20 { // the detach finishes in the background
		if dev, err = cl.AttachVolume(ctx, vol, testInstance); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || dev == "" {
		t.Fatalf("retried attach: %q, %v", dev, err)
	}
}

// TestGhostVolume: EBS deletes a volume it cannot encrypt with the KMS key
// asked for. CreateVolume must say so, naming the key and the
// permissions, at once and again when the provisioner retries.
func TestGhostVolume(t *testing.T) {
	const good, bad = "arn:aws:kms:us-east-1:123456789012:key/good", "arn:aws:kms:us-east-1:123456789012:key/unusable"
	srv := startFake(t, awsfake.Options{Seed: 6, KMSKeys: []string{good}, Delays: &awsfake.Delays{
		Default: awsfake.Delay{Max: 10 * time.Millisecond},
		Per:     map[awsfake.Transition]awsfake.Delay{awsfake.VolumeCreate: {Min: 100 * time.Millisecond, Max: 100 * time.Millisecond}},
	}})
	cl := awscloud.NewEBS(srv.AWSConfig(), fastOptions(nil), nil)
	ctx := testCtx(t, time.Minute)
	in := cloud.CreateVolumeInput{ClientToken: "ghost", SizeGiB: 1, Type: "gp3", AvailabilityZone: testZone, Encrypted: true, KMSKeyID: bad}
	start := time.Now()
	_, err := cl.CreateVolume(ctx, in)
	for _, want := range []string{bad, "kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext", "request ID"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ghost volume error %v does not mention %s", err, want)
		}
	}
	if !errors.Is(err, cloud.ErrUnauthorized) {
		t.Errorf("%v is not ErrUnauthorized", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to notice", d)
	}
	_, err = cl.CreateVolume(ctx, in)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "cannot be created again") {
		t.Errorf("retried ghost: %v", err)
	}
	in.ClientToken, in.KMSKeyID = "fine", good
	if v, err := cl.CreateVolume(ctx, in); err != nil || v.State != "available" || v.KMSKeyID != good {
		t.Errorf("volume with a usable key: %+v, %v", v, err)
	}
}

// TestResizeAndModify grows a volume, waits for EC2, and treats a repeated
// request as done.
func TestResizeAndModify(t *testing.T) {
	srv := startFake(t, awsfake.Options{Seed: 7})
	vol, err := srv.AddVolume(awsfake.VolumeSpec{Zone: testZone, SizeGiB: 4})
	if err != nil {
		t.Fatal(err)
	}
	cl := awscloud.NewEBS(srv.AWSConfig(), fastOptions(nil), nil)
	ctx := testCtx(t, time.Minute)
	if got, err := cl.ResizeVolume(ctx, vol, 8); err != nil || got != 8 {
		t.Fatalf("resize: %d, %v", got, err)
	}
	if got, err := cl.ResizeVolume(ctx, vol, 6); err != nil || got != 8 {
		t.Errorf("resizing below the size: %d, %v; want 8 and no call", got, err)
	}
	if n := srv.Calls("ModifyVolume"); n != 1 {
		t.Errorf("%d ModifyVolume calls, want 1", n)
	}
	// A modification still optimizing blocks another, with a retryable
	// answer; the same one again is fine.
	srv.SetDelays(awsfake.Delays{Per: map[awsfake.Transition]awsfake.Delay{awsfake.ModifyOptimize: {Min: time.Hour, Max: time.Hour}}})
	if err := cl.ModifyVolume(ctx, vol, cloud.ModifyVolumeInput{Type: "gp3", IOPS: 4000}); err != nil {
		t.Fatal(err)
	}
	if err := cl.ModifyVolume(ctx, vol, cloud.ModifyVolumeInput{Type: "gp3", IOPS: 4000}); err != nil {
		t.Errorf("same modification again: %v", err)
	}
	if _, err := cl.ResizeVolume(ctx, vol, 20); !errors.Is(err, cloud.ErrInUse) {
		t.Errorf("resize during another modification: %v, want ErrInUse", err)
	}
	v, err := cl.DescribeVolume(ctx, vol)
	if err != nil || v.SizeGiB != 8 || v.IOPS != 4000 {
		t.Errorf("volume now %+v, %v", v, err)
	}
}

// TestListVolumesPages pages through volumes a few at a time while one is
// deleted between pages, and refuses a token it did not make.
func TestListVolumesPages(t *testing.T) {
	srv := startFake(t, awsfake.Options{Seed: 8})
	cl := awscloud.NewEBS(srv.AWSConfig(), fastOptions(nil), nil)
	ctx := testCtx(t, time.Minute)
	want := map[string]bool{}
	for _, id := range srv.VolumeIDs() {
		want[id] = true
	}
	for range 11 {
		id, err := srv.AddVolume(awsfake.VolumeSpec{Zone: testZone})
		if err != nil {
			t.Fatal(err)
		}
		want[id] = true
	}
	got := map[string]bool{}
	token, pages := "", 0
	for {
		p, err := cl.ListVolumes(ctx, 3, token)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range p.Items {
			if got[v.ID] {
				t.Errorf("%s listed twice", v.ID)
			}
			got[v.ID] = true
		}
		if pages == 1 {
			// Deleting the last volume of a page must not upset paging.
			if err := cl.DeleteVolume(ctx, p.Items[len(p.Items)-1].ID); err != nil {
				t.Fatal(err)
			}
		}
		if p.NextToken == "" {
			break
		}
		token = p.NextToken
	}
	if len(got) != len(want) || pages != 4 {
		t.Errorf("listed %d volumes in %d pages, want %d in 4", len(got), pages, len(want))
	}
	if _, err := cl.ListVolumes(ctx, 3, "not-a-token"); !errors.Is(err, cloud.ErrInvalidArgument) {
		t.Errorf("bad token: %v, want ErrInvalidArgument", err)
	}
}

// TestSnapshots creates, finds by tag, lists and deletes snapshots.
func TestSnapshots(t *testing.T) {
	srv := startFake(t, awsfake.Options{Seed: 9})
	vol, err := srv.AddVolume(awsfake.VolumeSpec{Zone: testZone})
	if err != nil {
		t.Fatal(err)
	}
	cl := awscloud.NewEBS(srv.AWSConfig(), fastOptions(nil), nil)
	ctx := testCtx(t, time.Minute)
	s, err := cl.CreateSnapshot(ctx, cloud.CreateSnapshotInput{VolumeID: vol, Tags: map[string]string{"CSIVolumeSnapshotName": "snap-a"}})
	if err != nil {
		t.Fatal(err)
	}
	page, err := cl.ListSnapshots(ctx, ebs.SnapshotFilter{Tags: map[string]string{"CSIVolumeSnapshotName": "snap-a"}}, 0, "")
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != s.ID {
		t.Errorf("by tag: %+v, %v", page, err)
	}
	page, err = cl.ListSnapshots(ctx, ebs.SnapshotFilter{SnapshotID: "snap-0123456789abcdef0"}, 0, "")
	if err != nil || len(page.Items) != 0 {
		t.Errorf("unknown ID: %+v, %v; want an empty list", page, err)
	}
	if _, err := cl.DescribeSnapshot(ctx, "snap-0123456789abcdef0"); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("describe unknown: %v", err)
	}
	// CreateSnapshot has no client token: a lost answer is not retried.
	srv.SetFaults(awsfake.Faults{LostResponseRate: 1, Operations: []string{"CreateSnapshot"}})
	if _, err := cl.CreateSnapshot(ctx, cloud.CreateSnapshotInput{VolumeID: vol}); !errors.Is(err, cloud.ErrUnavailable) {
		t.Errorf("lost answer: %v, want ErrUnavailable", err)
	}
	if n := srv.Calls("CreateSnapshot"); n != 2 {
		t.Errorf("%d CreateSnapshot requests, want 2: the lost one must not be retried", n)
	}
	srv.SetFaults(awsfake.Faults{})
	if err := cl.DeleteSnapshot(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if err := cl.DeleteSnapshot(ctx, s.ID); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("deleting twice: %v, want ErrNotFound", err)
	}
}
