package awsfake

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/efs/types"
)

func TestEFSRoundTrip(t *testing.T) {
	e := start(t, Options{})
	c := ctx(t)

	fsOut, err := e.efs.CreateFileSystem(c, &efs.CreateFileSystemInput{
		CreationToken: aws.String("tok-1"),
		Encrypted:     aws.Bool(true),
		Tags:          []types.Tag{{Key: aws.String("Name"), Value: aws.String("shared")}},
	})
	if err != nil {
		t.Fatalf("CreateFileSystem: %v", err)
	}
	fsID := aws.ToString(fsOut.FileSystemId)
	if rid, ok := awsmiddleware.GetRequestIDMetadata(fsOut.ResultMetadata); !ok || len(rid) != 36 {
		t.Errorf("CreateFileSystem request ID %q", rid)
	}
	if fsOut.LifeCycleState != types.LifeCycleStateCreating || aws.ToString(fsOut.Name) != "shared" || !aws.ToBool(fsOut.Encrypted) {
		t.Errorf("CreateFileSystem answer = %+v", fsOut)
	}
	if !strings.HasPrefix(fsID, "fs-") || aws.ToString(fsOut.FileSystemArn) != "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/"+fsID {
		t.Errorf("ID %s ARN %s", fsID, aws.ToString(fsOut.FileSystemArn))
	}
	eventually(t, "file system available", 2*time.Second, func() bool {
		out, err := e.efs.DescribeFileSystems(c, &efs.DescribeFileSystemsInput{FileSystemId: &fsID})
		return err == nil && len(out.FileSystems) == 1 && out.FileSystems[0].LifeCycleState == types.LifeCycleStateAvailable
	})

	zone := e.srv.Zones()[1]
	mt, err := e.efs.CreateMountTarget(c, &efs.CreateMountTargetInput{FileSystemId: &fsID, SubnetId: aws.String(e.srv.SubnetForZone(zone))})
	if err != nil {
		t.Fatalf("CreateMountTarget: %v", err)
	}
	mts, err := e.efs.DescribeMountTargets(c, &efs.DescribeMountTargetsInput{FileSystemId: &fsID})
	if err != nil || len(mts.MountTargets) != 1 {
		t.Fatalf("DescribeMountTargets = %+v, %v", mts, err)
	}
	got := mts.MountTargets[0]
	if aws.ToString(got.AvailabilityZoneName) != zone || aws.ToString(got.IpAddress) == "" || aws.ToString(got.MountTargetId) != aws.ToString(mt.MountTargetId) {
		t.Errorf("mount target = %+v", got)
	}
	if aws.ToString(got.IpAddress) != "10.0.1.4" {
		t.Errorf("first address of the zone's subnet = %s, want 10.0.1.4", aws.ToString(got.IpAddress))
	}

	ap, err := e.efs.CreateAccessPoint(c, &efs.CreateAccessPointInput{
		ClientToken:  aws.String("pvc-1"),
		FileSystemId: &fsID,
		PosixUser:    &types.PosixUser{Uid: aws.Int64(1000), Gid: aws.Int64(2000), SecondaryGids: []int64{3000}},
		RootDirectory: &types.RootDirectory{
			Path:         aws.String("/dyn/pvc-1"),
			CreationInfo: &types.CreationInfo{OwnerUid: aws.Int64(1000), OwnerGid: aws.Int64(2000), Permissions: aws.String("0750")},
		},
		Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("pvc-1")}, {Key: aws.String("team"), Value: aws.String("a")}},
	})
	if err != nil {
		t.Fatalf("CreateAccessPoint: %v", err)
	}
	apID := aws.ToString(ap.AccessPointId)
	if ap.LifeCycleState != types.LifeCycleStateCreating || aws.ToString(ap.Name) != "pvc-1" || aws.ToInt64(ap.PosixUser.Gid) != 2000 ||
		aws.ToString(ap.RootDirectory.CreationInfo.Permissions) != "0750" || aws.ToString(ap.ClientToken) != "pvc-1" {
		t.Errorf("CreateAccessPoint answer = %+v", ap)
	}
	eventually(t, "access point available", 2*time.Second, func() bool {
		out, err := e.efs.DescribeAccessPoints(c, &efs.DescribeAccessPointsInput{AccessPointId: &apID})
		return err == nil && len(out.AccessPoints) == 1 && out.AccessPoints[0].LifeCycleState == types.LifeCycleStateAvailable
	})
	byFS, err := e.efs.DescribeAccessPoints(c, &efs.DescribeAccessPointsInput{FileSystemId: &fsID})
	if err != nil || len(byFS.AccessPoints) != 1 || aws.ToString(byFS.AccessPoints[0].RootDirectory.Path) != "/dyn/pvc-1" {
		t.Fatalf("DescribeAccessPoints by file system = %+v, %v", byFS, err)
	}
	mtsByAP, err := e.efs.DescribeMountTargets(c, &efs.DescribeMountTargetsInput{AccessPointId: &apID})
	if err != nil || len(mtsByAP.MountTargets) != 1 {
		t.Errorf("DescribeMountTargets by access point = %+v, %v", mtsByAP, err)
	}

	if _, err := e.efs.TagResource(c, &efs.TagResourceInput{ResourceId: &apID, Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("test")}}}); err != nil {
		t.Fatalf("TagResource: %v", err)
	}
	if _, err := e.efs.UntagResource(c, &efs.UntagResourceInput{ResourceId: &apID, TagKeys: []string{"team"}}); err != nil {
		t.Fatalf("UntagResource: %v", err)
	}
	tags, err := e.efs.ListTagsForResource(c, &efs.ListTagsForResourceInput{ResourceId: &apID})
	if err != nil {
		t.Fatalf("ListTagsForResource: %v", err)
	}
	var kv []string
	for _, tg := range tags.Tags {
		kv = append(kv, aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
	}
	if want := []string{"Name=pvc-1", "env=test"}; !slices.Equal(kv, want) {
		t.Errorf("tags = %v, want %v", kv, want)
	}

	if _, err := e.efs.DeleteAccessPoint(c, &efs.DeleteAccessPointInput{AccessPointId: &apID}); err != nil {
		t.Fatalf("DeleteAccessPoint: %v", err)
	}
	eventually(t, "access point gone", 2*time.Second, func() bool {
		_, err := e.efs.DescribeAccessPoints(c, &efs.DescribeAccessPointsInput{AccessPointId: &apID})
		var nf *types.AccessPointNotFound
		return errors.As(err, &nf)
	})
	var inUse *types.FileSystemInUse
	if _, err := e.efs.DeleteFileSystem(c, &efs.DeleteFileSystemInput{FileSystemId: &fsID}); !errors.As(err, &inUse) {
		t.Fatalf("DeleteFileSystem with a mount target: %v, want FileSystemInUse", err)
	}
	if _, err := e.efs.DeleteMountTarget(c, &efs.DeleteMountTargetInput{MountTargetId: mt.MountTargetId}); err != nil {
		t.Fatalf("DeleteMountTarget: %v", err)
	}
	eventually(t, "mount target gone", 2*time.Second, func() bool {
		out, err := e.efs.DescribeMountTargets(c, &efs.DescribeMountTargetsInput{FileSystemId: &fsID})
		return err == nil && len(out.MountTargets) == 0
	})
	if _, err := e.efs.DeleteFileSystem(c, &efs.DeleteFileSystemInput{FileSystemId: &fsID}); err != nil {
		t.Fatalf("DeleteFileSystem: %v", err)
	}
	eventually(t, "file system gone", 2*time.Second, func() bool {
		_, err := e.efs.DescribeFileSystems(c, &efs.DescribeFileSystemsInput{FileSystemId: &fsID})
		var nf *types.FileSystemNotFound
		return errors.As(err, &nf)
	})
}

// TestEFSAccessPointPaging seeds a file system to EFS's quota of 10,000
// access points and pages through them.
func TestEFSAccessPointPaging(t *testing.T) {
	e := start(t, Options{})
	c := ctx(t)
	fsID, err := e.srv.AddFileSystem(FileSystemSpec{Name: "big"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := e.srv.AddFileSystem(FileSystemSpec{})
	if _, err := e.srv.AddAccessPoints(other, 7); err != nil {
		t.Fatal(err)
	}
	want, err := e.srv.AddAccessPoints(fsID, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, pageSize := range []int32{1000, 333} {
		t.Run(fmt.Sprint(pageSize), func(t *testing.T) {
			e.srv.ResetStats()
			seen := map[string]int{}
			p := efs.NewDescribeAccessPointsPaginator(e.efs, &efs.DescribeAccessPointsInput{FileSystemId: &fsID, MaxResults: aws.Int32(pageSize)})
			for p.HasMorePages() {
				out, err := p.NextPage(c)
				if err != nil {
					t.Fatalf("NextPage: %v", err)
				}
				if len(out.AccessPoints) > int(pageSize) {
					t.Fatalf("page of %d, MaxResults %d", len(out.AccessPoints), pageSize)
				}
				for _, ap := range out.AccessPoints {
					seen[aws.ToString(ap.AccessPointId)]++
				}
			}
			if len(seen) != len(want) {
				t.Fatalf("saw %d access points, want %d", len(seen), len(want))
			}
			for _, id := range want {
				if seen[id] != 1 {
					t.Fatalf("access point %s seen %d times", id, seen[id])
				}
			}
			if pages, calls := (10000+int(pageSize)-1)/int(pageSize), e.srv.Calls("DescribeAccessPoints"); calls != pages {
				t.Errorf("DescribeAccessPoints calls = %d, want %d", calls, pages)
			}
		})
	}

	_, err = e.efs.CreateAccessPoint(c, &efs.CreateAccessPointInput{ClientToken: aws.String("one-too-many"), FileSystemId: &fsID}, noRetryEFS)
	var limit *types.AccessPointLimitExceeded
	if !errors.As(err, &limit) {
		t.Fatalf("10,001st access point: %v, want AccessPointLimitExceeded", err)
	}
	if _, status, _ := apiErr(t, err); status != 403 {
		t.Errorf("AccessPointLimitExceeded status %d, want 403", status)
	}
	all, err := e.efs.DescribeAccessPoints(c, &efs.DescribeAccessPointsInput{MaxResults: aws.Int32(20000)})
	if err != nil || len(all.AccessPoints) != 10007 {
		t.Errorf("DescribeAccessPoints without a filter: %d, %v; want all 10007", len(all.AccessPoints), err)
	}
}

func TestEFSClientToken(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			e := start(t, Options{StrictAccessPointTokens: strict})
			c := ctx(t)
			fsID, _ := e.srv.AddFileSystem(FileSystemSpec{})
			fs2, _ := e.srv.AddFileSystem(FileSystemSpec{})
			in := func(fs, path string) *efs.CreateAccessPointInput {
				return &efs.CreateAccessPointInput{
					ClientToken:   aws.String("same-token"),
					FileSystemId:  aws.String(fs),
					PosixUser:     &types.PosixUser{Uid: aws.Int64(1), Gid: aws.Int64(1)},
					RootDirectory: &types.RootDirectory{Path: aws.String(path)},
				}
			}
			first, err := e.efs.CreateAccessPoint(c, in(fsID, "/a"))
			if err != nil {
				t.Fatal(err)
			}
			again, err := e.efs.CreateAccessPoint(c, in(fsID, "/a"), noRetryEFS)
			var exists *types.AccessPointAlreadyExists
			switch {
			case strict && !errors.As(err, &exists):
				t.Errorf("identical retry in strict mode: %v, want AccessPointAlreadyExists", err)
			case !strict && err != nil:
				t.Errorf("identical retry: %v", err)
			case !strict && aws.ToString(again.AccessPointId) != aws.ToString(first.AccessPointId):
				t.Errorf("identical retry made %s, first was %s", aws.ToString(again.AccessPointId), aws.ToString(first.AccessPointId))
			}
			for name, req := range map[string]*efs.CreateAccessPointInput{
				"different path":        in(fsID, "/b"),
				"different file system": in(fs2, "/a"),
			} {
				_, err := e.efs.CreateAccessPoint(c, req, noRetryEFS)
				if !errors.As(err, &exists) {
					t.Errorf("%s: %v, want AccessPointAlreadyExists", name, err)
					continue
				}
				if aws.ToString(exists.AccessPointId) != aws.ToString(first.AccessPointId) {
					t.Errorf("%s: error names %s, want %s", name, aws.ToString(exists.AccessPointId), aws.ToString(first.AccessPointId))
				}
				if code, status, rid := apiErr(t, err); code != "AccessPointAlreadyExists" || status != 409 || rid == "" {
					t.Errorf("%s: code %s status %d request ID %q", name, code, status, rid)
				}
			}
			if n := len(e.srv.AccessPointIDs("")); n != 1 {
				t.Errorf("%d access points exist, want 1", n)
			}
		})
	}
}

func TestEFSErrors(t *testing.T) {
	e := start(t, Options{Delays: &Delays{Default: Delay{Max: 5 * time.Millisecond}, Per: map[Transition]Delay{FileSystemCreate: {Min: time.Hour, Max: time.Hour}}}})
	c := ctx(t)
	fsID, _ := e.srv.AddFileSystem(FileSystemSpec{MountTargetZones: []string{"us-east-1a"}})
	creating, err := e.efs.CreateFileSystem(c, &efs.CreateFileSystemInput{CreationToken: aws.String("slow")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		call   func() error
		code   string
		status int
		typed  func(error) bool
	}{
		{"FileSystemNotFound", func() error {
			_, err := e.efs.DescribeFileSystems(c, &efs.DescribeFileSystemsInput{FileSystemId: aws.String("fs-0000000000000000a")}, noRetryEFS)
			return err
		}, "FileSystemNotFound", 404, func(err error) bool { var x *types.FileSystemNotFound; return errors.As(err, &x) }},
		{"AccessPointNotFound", func() error {
			_, err := e.efs.DeleteAccessPoint(c, &efs.DeleteAccessPointInput{AccessPointId: aws.String("fsap-0000000000000000a")}, noRetryEFS)
			return err
		}, "AccessPointNotFound", 404, func(err error) bool { var x *types.AccessPointNotFound; return errors.As(err, &x) }},
		{"BadRequest both IDs", func() error {
			_, err := e.efs.DescribeAccessPoints(c, &efs.DescribeAccessPointsInput{FileSystemId: &fsID, AccessPointId: aws.String("fsap-0000000000000000a")}, noRetryEFS)
			return err
		}, "BadRequest", 400, func(err error) bool { var x *types.BadRequest; return errors.As(err, &x) }},
		{"BadRequest permissions", func() error {
			_, err := e.efs.CreateAccessPoint(c, &efs.CreateAccessPointInput{FileSystemId: &fsID, RootDirectory: &types.RootDirectory{
				Path: aws.String("/x"), CreationInfo: &types.CreationInfo{OwnerUid: aws.Int64(1), OwnerGid: aws.Int64(1), Permissions: aws.String("999")}}}, noRetryEFS)
			return err
		}, "BadRequest", 400, func(err error) bool { var x *types.BadRequest; return errors.As(err, &x) }},
		{"FileSystemAlreadyExists", func() error {
			_, err := e.efs.CreateFileSystem(c, &efs.CreateFileSystemInput{CreationToken: aws.String("slow")}, noRetryEFS)
			var x *types.FileSystemAlreadyExists
			if errors.As(err, &x) && aws.ToString(x.FileSystemId) != aws.ToString(creating.FileSystemId) {
				t.Errorf("FileSystemAlreadyExists names %s", aws.ToString(x.FileSystemId))
			}
			return err
		}, "FileSystemAlreadyExists", 409, func(err error) bool { var x *types.FileSystemAlreadyExists; return errors.As(err, &x) }},
		{"IncorrectFileSystemLifeCycleState", func() error {
			_, err := e.efs.CreateAccessPoint(c, &efs.CreateAccessPointInput{FileSystemId: creating.FileSystemId}, noRetryEFS)
			return err
		}, "IncorrectFileSystemLifeCycleState", 409, func(err error) bool { var x *types.IncorrectFileSystemLifeCycleState; return errors.As(err, &x) }},
		{"MountTargetConflict", func() error {
			_, err := e.efs.CreateMountTarget(c, &efs.CreateMountTargetInput{FileSystemId: &fsID, SubnetId: aws.String(e.srv.SubnetForZone("us-east-1a"))}, noRetryEFS)
			return err
		}, "MountTargetConflict", 409, func(err error) bool { var x *types.MountTargetConflict; return errors.As(err, &x) }},
		{"SubnetNotFound", func() error {
			_, err := e.efs.CreateMountTarget(c, &efs.CreateMountTargetInput{FileSystemId: &fsID, SubnetId: aws.String("subnet-nope")}, noRetryEFS)
			return err
		}, "SubnetNotFound", 400, func(err error) bool { var x *types.SubnetNotFound; return errors.As(err, &x) }},
		{"MountTargetNotFound", func() error {
			_, err := e.efs.DescribeMountTargets(c, &efs.DescribeMountTargetsInput{MountTargetId: aws.String("fsmt-0000000000000000a")}, noRetryEFS)
			return err
		}, "MountTargetNotFound", 404, func(err error) bool { var x *types.MountTargetNotFound; return errors.As(err, &x) }},
		{"ThrottlingException", func() error {
			e.srv.FailNext("CreateAccessPoint", "ThrottlingException", "", 1)
			_, err := e.efs.CreateAccessPoint(c, &efs.CreateAccessPointInput{FileSystemId: &fsID}, noRetryEFS)
			return err
		}, "ThrottlingException", 429, func(err error) bool { var x *types.ThrottlingException; return errors.As(err, &x) }},
		{"InternalServerError", func() error {
			e.srv.FailNext("DescribeFileSystems", "InternalServerError", "", 1)
			_, err := e.efs.DescribeFileSystems(c, &efs.DescribeFileSystemsInput{}, noRetryEFS)
			return err
		}, "InternalServerError", 500, func(err error) bool { var x *types.InternalServerError; return errors.As(err, &x) }},
		{"ThrottlingException is generic where the model lacks it", func() error {
			e.srv.FailNext("DescribeAccessPoints", "ThrottlingException", "", 1)
			_, err := e.efs.DescribeAccessPoints(c, &efs.DescribeAccessPointsInput{FileSystemId: &fsID}, noRetryEFS)
			return err
		}, "ThrottlingException", 429, func(err error) bool { return err != nil }},
		{"AccessDeniedException is generic", func() error {
			e.srv.FailNext("CreateAccessPoint", "AccessDeniedException", "not allowed", 1)
			_, err := e.efs.CreateAccessPoint(c, &efs.CreateAccessPointInput{FileSystemId: &fsID}, noRetryEFS)
			return err
		}, "AccessDeniedException", 403, func(err error) bool { return err != nil }},
	}
	seenIDs := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !tc.typed(err) {
				t.Errorf("error %T %v is not the SDK's typed %s", err, err, tc.code)
			}
			code, status, rid := apiErr(t, err)
			if code != tc.code || status != tc.status {
				t.Errorf("code %s status %d, want %s %d", code, status, tc.code, tc.status)
			}
			if len(rid) != 36 || seenIDs[rid] {
				t.Errorf("request ID %q is not a fresh UUID", rid)
			}
			seenIDs[rid] = true
		})
	}
}
