package awsfake

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func fastWaiter[T any](o *T) {
	switch w := any(o).(type) {
	case *ec2.VolumeAvailableWaiterOptions:
		w.MinDelay, w.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	case *ec2.VolumeInUseWaiterOptions:
		w.MinDelay, w.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	case *ec2.VolumeDeletedWaiterOptions:
		w.MinDelay, w.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	case *ec2.SnapshotCompletedWaiterOptions:
		w.MinDelay, w.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	}
}

func TestEC2VolumeLifecycle(t *testing.T) {
	e := start(t, Options{})
	c := ctx(t)
	if err := e.srv.AddInstance("i-0123456789abcdef0", "us-east-1b", "m6i.large"); err != nil {
		t.Fatal(err)
	}

	cv, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{
		AvailabilityZone: aws.String("us-east-1b"),
		Size:             aws.Int32(10),
		VolumeType:       types.VolumeTypeGp3,
		Iops:             aws.Int32(4000),
		Throughput:       aws.Int32(250),
		Encrypted:        aws.Bool(true),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{
			{Key: aws.String("CSIVolumeName"), Value: aws.String("pvc-1")},
		}}},
	})
	if err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	volID := aws.ToString(cv.VolumeId)
	if cv.State != types.VolumeStateCreating || aws.ToInt32(cv.Iops) != 4000 || aws.ToInt32(cv.Throughput) != 250 ||
		!aws.ToBool(cv.Encrypted) || aws.ToString(cv.KmsKeyId) == "" || len(cv.Tags) != 1 || cv.CreateTime == nil {
		t.Errorf("CreateVolume answer = %+v", cv)
	}
	if rid, ok := awsmiddleware.GetRequestIDMetadata(cv.ResultMetadata); !ok || len(rid) != 36 {
		t.Errorf("CreateVolume request ID %q", rid)
	}
	if err := ec2.NewVolumeAvailableWaiter(e.ec2, fastWaiter).Wait(c, &ec2.DescribeVolumesInput{VolumeIds: []string{volID}}, 5*time.Second); err != nil {
		t.Fatalf("waiting for available: %v", err)
	}

	att, err := e.ec2.AttachVolume(c, &ec2.AttachVolumeInput{VolumeId: &volID, InstanceId: aws.String("i-0123456789abcdef0"), Device: aws.String("/dev/xvdba")})
	if err != nil {
		t.Fatalf("AttachVolume: %v", err)
	}
	if att.State != types.VolumeAttachmentStateAttaching || aws.ToString(att.Device) != "/dev/xvdba" {
		t.Errorf("AttachVolume answer = %+v", att)
	}
	eventually(t, "attachment attached", 2*time.Second, func() bool {
		out, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{VolumeIds: []string{volID}})
		return err == nil && out.Volumes[0].State == types.VolumeStateInUse && len(out.Volumes[0].Attachments) == 1 &&
			out.Volumes[0].Attachments[0].State == types.VolumeAttachmentStateAttached
	})
	inst, err := e.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	in := inst.Reservations[0].Instances[0]
	if aws.ToString(in.Placement.AvailabilityZone) != "us-east-1b" || in.InstanceType != "m6i.large" || len(in.BlockDeviceMappings) != 2 {
		t.Fatalf("instance = %+v", in)
	}
	var devices []string
	for _, m := range in.BlockDeviceMappings {
		devices = append(devices, aws.ToString(m.DeviceName)+"="+string(m.Ebs.Status))
	}
	if want := []string{"/dev/xvda=attached", "/dev/xvdba=attached"}; !slices.Equal(devices, want) {
		t.Errorf("block devices %v, want %v", devices, want)
	}

	mod, err := e.ec2.ModifyVolume(c, &ec2.ModifyVolumeInput{VolumeId: &volID, Size: aws.Int32(20)})
	if err != nil {
		t.Fatalf("ModifyVolume: %v", err)
	}
	if mod.VolumeModification.ModificationState != types.VolumeModificationStateModifying || aws.ToInt32(mod.VolumeModification.TargetSize) != 20 ||
		aws.ToInt32(mod.VolumeModification.OriginalSize) != 10 || aws.ToInt32(mod.VolumeModification.TargetIops) != 4000 {
		t.Errorf("ModifyVolume answer = %+v", mod.VolumeModification)
	}
	var states []types.VolumeModificationState
	eventually(t, "modification completed", 2*time.Second, func() bool {
		out, err := e.ec2.DescribeVolumesModifications(c, &ec2.DescribeVolumesModificationsInput{VolumeIds: []string{volID}})
		if err != nil || len(out.VolumesModifications) != 1 {
			return false
		}
		s := out.VolumesModifications[0].ModificationState
		if len(states) == 0 || states[len(states)-1] != s {
			states = append(states, s)
		}
		return s == types.VolumeModificationStateCompleted
	})
	if states[0] == types.VolumeModificationStateCompleted {
		t.Logf("modification completed before the first poll: %v", states)
	}
	vols, _ := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{VolumeIds: []string{volID}})
	if aws.ToInt32(vols.Volumes[0].Size) != 20 {
		t.Errorf("size after modification %d", aws.ToInt32(vols.Volumes[0].Size))
	}

	snap, err := e.ec2.CreateSnapshot(c, &ec2.CreateSnapshotInput{VolumeId: &volID, Description: aws.String("backup"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("CSIVolumeSnapshotName"), Value: aws.String("snap-a")}}}}})
	if err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	snapID := aws.ToString(snap.SnapshotId)
	if snap.State != types.SnapshotStatePending || aws.ToInt32(snap.VolumeSize) != 20 {
		t.Errorf("CreateSnapshot answer = %+v", snap)
	}
	if err := ec2.NewSnapshotCompletedWaiter(e.ec2, fastWaiter).Wait(c, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}}, 5*time.Second); err != nil {
		t.Fatalf("waiting for snapshot: %v", err)
	}
	byTag, err := e.ec2.DescribeSnapshots(c, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: []types.Filter{
		{Name: aws.String("tag:CSIVolumeSnapshotName"), Values: []string{"snap-*"}},
		{Name: aws.String("volume-id"), Values: []string{volID}},
	}})
	if err != nil || len(byTag.Snapshots) != 1 || aws.ToString(byTag.Snapshots[0].Progress) != "100%" {
		t.Fatalf("DescribeSnapshots by tag = %+v, %v", byTag, err)
	}

	det, err := e.ec2.DetachVolume(c, &ec2.DetachVolumeInput{VolumeId: &volID, InstanceId: aws.String("i-0123456789abcdef0")})
	if err != nil || det.State != types.VolumeAttachmentStateDetaching {
		t.Fatalf("DetachVolume = %+v, %v", det, err)
	}
	if err := ec2.NewVolumeAvailableWaiter(e.ec2, fastWaiter).Wait(c, &ec2.DescribeVolumesInput{VolumeIds: []string{volID}}, 5*time.Second); err != nil {
		t.Fatalf("waiting for detach: %v", err)
	}

	restored, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: &snapID})
	if err != nil || aws.ToInt32(restored.Size) != 20 || !aws.ToBool(restored.Encrypted) || aws.ToString(restored.SnapshotId) != snapID {
		t.Fatalf("CreateVolume from snapshot = %+v, %v", restored, err)
	}

	if _, err := e.ec2.DeleteSnapshot(c, &ec2.DeleteSnapshotInput{SnapshotId: &snapID}); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	if _, err := e.ec2.DeleteVolume(c, &ec2.DeleteVolumeInput{VolumeId: &volID}); err != nil {
		t.Fatalf("DeleteVolume: %v", err)
	}
	if err := ec2.NewVolumeDeletedWaiter(e.ec2, fastWaiter).Wait(c, &ec2.DescribeVolumesInput{VolumeIds: []string{volID}}, 5*time.Second); err != nil {
		t.Fatalf("waiting for deletion: %v", err)
	}

	zones, err := e.ec2.DescribeAvailabilityZones(c, &ec2.DescribeAvailabilityZonesInput{})
	if err != nil || len(zones.AvailabilityZones) != 3 || aws.ToString(zones.AvailabilityZones[0].ZoneId) != "use1-az1" ||
		zones.AvailabilityZones[0].State != types.AvailabilityZoneStateAvailable {
		t.Fatalf("DescribeAvailabilityZones = %+v, %v", zones, err)
	}
	one, err := e.ec2.DescribeAvailabilityZones(c, &ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{{Name: aws.String("zone-id"), Values: []string{"use1-az3"}}}})
	if err != nil || len(one.AvailabilityZones) != 1 || aws.ToString(one.AvailabilityZones[0].ZoneName) != "us-east-1c" {
		t.Fatalf("DescribeAvailabilityZones by zone ID = %+v, %v", one, err)
	}
}

func TestEC2Tags(t *testing.T) {
	e := start(t, Options{})
	c := ctx(t)
	a, _ := e.srv.AddVolume(VolumeSpec{SizeGiB: 5, Tags: map[string]string{"app": "db"}})
	b, _ := e.srv.AddVolume(VolumeSpec{SizeGiB: 6, Zone: "us-east-1c"})
	if _, err := e.ec2.CreateTags(c, &ec2.CreateTagsInput{Resources: []string{a, b}, Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("csi")}}}); err != nil {
		t.Fatalf("CreateTags: %v", err)
	}
	find := func(filters ...types.Filter) []string {
		t.Helper()
		out, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{Filters: filters})
		if err != nil {
			t.Fatalf("DescribeVolumes %v: %v", filters, err)
		}
		var ids []string
		for _, v := range out.Volumes {
			ids = append(ids, aws.ToString(v.VolumeId))
		}
		slices.Sort(ids)
		return ids
	}
	both := []string{a, b}
	slices.Sort(both)
	f := func(name string, values ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: values}
	}
	for _, tc := range []struct {
		name    string
		filters []types.Filter
		want    []string
	}{
		{"tag", []types.Filter{f("tag:owner", "csi")}, both},
		{"two tags", []types.Filter{f("tag:owner", "csi"), f("tag:app", "db")}, []string{a}},
		{"tag-key", []types.Filter{f("tag-key", "app")}, []string{a}},
		{"wildcard", []types.Filter{f("tag:app", "d*")}, []string{a}},
		{"zone", []types.Filter{f("availability-zone", "us-east-1c")}, []string{b}},
		{"any of values", []types.Filter{f("size", "5", "6")}, both},
		{"no match", []types.Filter{f("tag:owner", "nobody")}, nil},
	} {
		if got := find(tc.filters...); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := e.ec2.DeleteTags(c, &ec2.DeleteTagsInput{Resources: []string{a}, Tags: []types.Tag{{Key: aws.String("owner")}}}); err != nil {
		t.Fatalf("DeleteTags: %v", err)
	}
	if got := find(f("tag:owner", "csi")); !slices.Equal(got, []string{b}) {
		t.Errorf("after DeleteTags: %v", got)
	}
	_, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{Filters: []types.Filter{f("no-such-filter", "x")}}, noRetryEC2)
	if code, _, _ := apiErr(t, err); code != "InvalidParameterValue" {
		t.Errorf("unknown filter: %s", code)
	}
}

func TestEC2Paging(t *testing.T) {
	e := start(t, Options{})
	c := ctx(t)
	for i := range 4 {
		if err := e.srv.AddInstance(fmt.Sprintf("i-%017d", i), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	var vols []string
	for range 23 {
		id, err := e.srv.AddVolume(VolumeSpec{SizeGiB: 1})
		if err != nil {
			t.Fatal(err)
		}
		vols = append(vols, id)
	}
	for _, v := range vols[:12] {
		if _, err := e.ec2.CreateSnapshot(c, &ec2.CreateSnapshotInput{VolumeId: aws.String(v)}); err != nil {
			t.Fatal(err)
		}
	}
	want := e.srv.VolumeIDs() // the 23 plus 4 root volumes
	if len(want) != 27 {
		t.Fatalf("%d volumes", len(want))
	}

	seen := map[string]int{}
	pages := 0
	p := ec2.NewDescribeVolumesPaginator(e.ec2, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		out, err := p.NextPage(c)
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		pages++
		if len(out.Volumes) > 5 {
			t.Fatalf("page of %d", len(out.Volumes))
		}
		for _, v := range out.Volumes {
			seen[aws.ToString(v.VolumeId)]++
		}
		// A volume created between pages after the cursor shows up once;
		// one before it does not disturb the pages.
		if pages == 2 {
			id, _ := e.srv.AddVolume(VolumeSpec{ID: "vol-fffffffffffffffff"})
			want = append(want, id)
		}
	}
	if len(seen) != len(want) || pages != 6 {
		t.Errorf("saw %d volumes in %d pages, want %d in 6", len(seen), pages, len(want))
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Errorf("volume %s seen %d times", id, seen[id])
		}
	}

	var snaps []string
	sp := ec2.NewDescribeSnapshotsPaginator(e.ec2, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(5)})
	for sp.HasMorePages() {
		out, err := sp.NextPage(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out.Snapshots {
			snaps = append(snaps, aws.ToString(s.SnapshotId))
		}
	}
	if slices.Sort(snaps); !slices.Equal(snaps, e.srv.SnapshotIDs()) || len(snaps) != 12 {
		t.Errorf("snapshots paged: %d, want 12 distinct", len(snaps))
	}

	var insts []string
	ip := ec2.NewDescribeInstancesPaginator(e.ec2, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), Filters: []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"running"}}}})
	for ip.HasMorePages() {
		out, err := ip.NextPage(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				insts = append(insts, aws.ToString(in.InstanceId))
			}
		}
	}
	if len(insts) != 4 {
		t.Errorf("instances paged: %v", insts)
	}

	_, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{NextToken: aws.String("bogus")}, noRetryEC2)
	if code, _, _ := apiErr(t, err); code != "InvalidParameterValue" {
		t.Errorf("bogus NextToken: %s", code)
	}
}

func TestEC2ClientToken(t *testing.T) {
	e := start(t, Options{KMSKeys: []string{"arn:aws:kms:us-east-1:123456789012:key/good"}})
	c := ctx(t)
	in := func(size int32, kms string) *ec2.CreateVolumeInput {
		i := &ec2.CreateVolumeInput{ClientToken: aws.String("tok-" + fmt.Sprint(size) + kms), AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(size)}
		if kms != "" {
			i.Encrypted, i.KmsKeyId = aws.Bool(true), aws.String(kms)
		}
		return i
	}
	first, err := e.ec2.CreateVolume(c, in(3, ""))
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.ec2.CreateVolume(c, in(3, ""))
	if err != nil || aws.ToString(again.VolumeId) != aws.ToString(first.VolumeId) {
		t.Fatalf("same token and parameters: %v, %v", again, err)
	}
	changed := in(3, "")
	changed.Size = aws.Int32(4)
	_, err = e.ec2.CreateVolume(c, changed, noRetryEC2)
	if code, status, rid := apiErr(t, err); code != "IdempotentParameterMismatch" || status != 400 || rid == "" {
		t.Errorf("same token, other size: %s %d %q", code, status, rid)
	}

	// Once the volume is gone the token stays burned, as on EC2.
	if err := ec2.NewVolumeAvailableWaiter(e.ec2, fastWaiter).Wait(c, &ec2.DescribeVolumesInput{VolumeIds: []string{aws.ToString(first.VolumeId)}}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ec2.DeleteVolume(c, &ec2.DeleteVolumeInput{VolumeId: first.VolumeId}); err != nil {
		t.Fatal(err)
	}
	_, err = e.ec2.CreateVolume(c, in(3, ""), noRetryEC2)
	if code, _, _ := apiErr(t, err); code != "IdempotentParameterMismatch" {
		t.Errorf("token of a deleted volume: %s", code)
	}

	// A volume whose key cannot be used fails after creation and burns
	// its token too.
	bad, err := e.ec2.CreateVolume(c, in(5, "arn:aws:kms:us-east-1:123456789012:key/missing"))
	if err != nil {
		t.Fatalf("CreateVolume with an unknown key is accepted at first: %v", err)
	}
	err = ec2.NewVolumeAvailableWaiter(e.ec2, fastWaiter).Wait(c, &ec2.DescribeVolumesInput{VolumeIds: []string{aws.ToString(bad.VolumeId)}}, 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "InvalidVolume.NotFound") {
		t.Errorf("volume with an unknown key: waiter says %v, want InvalidVolume.NotFound", err)
	}
	_, err = e.ec2.CreateVolume(c, in(5, "arn:aws:kms:us-east-1:123456789012:key/missing"), noRetryEC2)
	if code, _, _ := apiErr(t, err); code != "IdempotentParameterMismatch" {
		t.Errorf("token of a failed volume: %s", code)
	}
	if _, err := e.ec2.CreateVolume(c, in(5, "arn:aws:kms:us-east-1:123456789012:key/good")); err != nil {
		t.Errorf("known key: %v", err)
	}

	long := in(1, "")
	long.ClientToken = aws.String(strings.Repeat("x", 65))
	_, err = e.ec2.CreateVolume(c, long, noRetryEC2)
	if code, _, _ := apiErr(t, err); code != "InvalidParameterValue" {
		t.Errorf("65-character token: %s", code)
	}
}

func TestEC2Errors(t *testing.T) {
	e := start(t, Options{VolumeLimit: 6, AttachmentLimit: 2})
	c := ctx(t)
	const inst = "i-00000000000000001"
	if err := e.srv.AddInstance(inst, "us-east-1a", "t3.small"); err != nil {
		t.Fatal(err)
	}
	avail, _ := e.srv.AddVolume(VolumeSpec{SizeGiB: 1})
	attached, _ := e.srv.AddVolume(VolumeSpec{SizeGiB: 1})
	otherZone, _ := e.srv.AddVolume(VolumeSpec{SizeGiB: 1, Zone: "us-east-1b"})
	if _, err := e.ec2.AttachVolume(c, &ec2.AttachVolumeInput{VolumeId: &attached, InstanceId: aws.String(inst), Device: aws.String("/dev/xvdbb")}); err != nil {
		t.Fatal(err)
	}
	spare, _ := e.srv.AddVolume(VolumeSpec{SizeGiB: 1})

	tests := []struct {
		name   string
		call   func() error
		code   string
		status int
	}{
		{"InvalidVolume.NotFound", func() error {
			_, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{VolumeIds: []string{"vol-00000000000000000"}}, noRetryEC2)
			return err
		}, "InvalidVolume.NotFound", 400},
		{"InvalidSnapshot.NotFound", func() error {
			_, err := e.ec2.DeleteSnapshot(c, &ec2.DeleteSnapshotInput{SnapshotId: aws.String("snap-00000000000000000")}, noRetryEC2)
			return err
		}, "InvalidSnapshot.NotFound", 400},
		{"InvalidInstanceID.NotFound", func() error {
			_, err := e.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-99999999999999999"}}, noRetryEC2)
			return err
		}, "InvalidInstanceID.NotFound", 400},
		{"VolumeInUse on delete", func() error {
			_, err := e.ec2.DeleteVolume(c, &ec2.DeleteVolumeInput{VolumeId: &attached}, noRetryEC2)
			return err
		}, "VolumeInUse", 400},
		{"VolumeInUse on attach", func() error {
			_, err := e.ec2.AttachVolume(c, &ec2.AttachVolumeInput{VolumeId: &attached, InstanceId: aws.String(inst), Device: aws.String("/dev/xvdbc")}, noRetryEC2)
			return err
		}, "VolumeInUse", 400},
		{"IncorrectState", func() error {
			_, err := e.ec2.DetachVolume(c, &ec2.DetachVolumeInput{VolumeId: &avail}, noRetryEC2)
			return err
		}, "IncorrectState", 400},
		{"device in use", func() error {
			_, err := e.ec2.AttachVolume(c, &ec2.AttachVolumeInput{VolumeId: &avail, InstanceId: aws.String(inst), Device: aws.String("/dev/xvdbb")}, noRetryEC2)
			return err
		}, "InvalidParameterValue", 400},
		{"InvalidVolume.ZoneMismatch", func() error {
			_, err := e.ec2.AttachVolume(c, &ec2.AttachVolumeInput{VolumeId: &otherZone, InstanceId: aws.String(inst), Device: aws.String("/dev/xvdbd")}, noRetryEC2)
			return err
		}, "InvalidVolume.ZoneMismatch", 400},
		{"AttachmentLimitExceeded", func() error {
			_, err := e.ec2.AttachVolume(c, &ec2.AttachVolumeInput{VolumeId: &spare, InstanceId: aws.String(inst), Device: aws.String("/dev/xvdbe")}, noRetryEC2)
			return err
		}, "AttachmentLimitExceeded", 400},
		{"InvalidParameterValue size", func() error {
			_, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(100000)}, noRetryEC2)
			return err
		}, "InvalidParameterValue", 400},
		{"InvalidParameterValue zone", func() error {
			_, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-west-2a"), Size: aws.Int32(1)}, noRetryEC2)
			return err
		}, "InvalidParameterValue", 400},
		{"InvalidParameterCombination", func() error {
			_, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{VolumeIds: []string{avail}, MaxResults: aws.Int32(5)}, noRetryEC2)
			return err
		}, "InvalidParameterCombination", 400},
		{"InvalidParameterCombination iops on gp2", func() error {
			_, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1), VolumeType: types.VolumeTypeGp2, Iops: aws.Int32(3000)}, noRetryEC2)
			return err
		}, "InvalidParameterCombination", 400},
		{"MissingParameter", func() error {
			_, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a")}, noRetryEC2)
			return err
		}, "MissingParameter", 400},
		{"IncorrectModificationState", func() error {
			if _, err := e.ec2.ModifyVolume(c, &ec2.ModifyVolumeInput{VolumeId: &avail, Size: aws.Int32(2)}); err != nil {
				return err
			}
			_, err := e.ec2.ModifyVolume(c, &ec2.ModifyVolumeInput{VolumeId: &avail, Size: aws.Int32(3)}, noRetryEC2)
			return err
		}, "IncorrectModificationState", 400},
		{"VolumeLimitExceeded", func() error {
			if _, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)}); err != nil {
				return err
			}
			_, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)}, noRetryEC2)
			return err
		}, "VolumeLimitExceeded", 400},
		{"DryRunOperation", func() error {
			_, err := e.ec2.DeleteVolume(c, &ec2.DeleteVolumeInput{VolumeId: &avail, DryRun: aws.Bool(true)}, noRetryEC2)
			return err
		}, "DryRunOperation", 412},
		{"InsufficientVolumeCapacity", func() error {
			e.srv.FailNext("CreateVolume", "InsufficientVolumeCapacity", "There is not enough capacity to fulfill your EBS volume provision request.", 1)
			_, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)}, noRetryEC2)
			return err
		}, "InsufficientVolumeCapacity", 500},
		{"RequestLimitExceeded", func() error {
			e.srv.FailNext("DescribeVolumes", "RequestLimitExceeded", "", 1)
			_, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{}, noRetryEC2)
			return err
		}, "RequestLimitExceeded", 503},
		{"UnauthorizedOperation", func() error {
			e.srv.FailNext("AttachVolume", "UnauthorizedOperation", "You are not authorized to perform this operation.", 1)
			_, err := e.ec2.AttachVolume(c, &ec2.AttachVolumeInput{VolumeId: &avail, InstanceId: aws.String(inst), Device: aws.String("/dev/xvdbf")}, noRetryEC2)
			return err
		}, "UnauthorizedOperation", 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, status, rid := apiErr(t, tc.call())
			if code != tc.code || status != tc.status || len(rid) != 36 {
				t.Errorf("code %s status %d request ID %q; want %s %d and a UUID", code, status, rid, tc.code, tc.status)
			}
		})
	}
	if st := e.srv.Stats("AttachVolume"); st.Injected != 1 || st.APIErrors != 4 {
		t.Errorf("AttachVolume stats %+v", st)
	}
}

func TestEC2UnknownActionAndAuth(t *testing.T) {
	e := start(t, Options{})
	c := ctx(t)
	_, err := e.ec2.DescribeVpcs(c, &ec2.DescribeVpcsInput{}, noRetryEC2)
	if code, _, _ := apiErr(t, err); code != "InvalidAction" {
		t.Errorf("unserved action: %s", code)
	}
	// Unsigned requests are refused by both services.
	for path, want := range map[string]int{"/": 401, "/2015-02-01/file-systems": 403} {
		resp, err := http.Post(e.srv.URL+path, "application/x-www-form-urlencoded", strings.NewReader("Action=DescribeVolumes&Version=2016-11-15"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("unsigned request to %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
