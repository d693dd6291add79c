package awsfake

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	efstypes "github.com/aws/aws-sdk-go-v2/service/efs/types"
)

// patient is the SDK's standard retryer with more attempts and no retry
// quota, for tests that inject many faults.
func patient(attempts int) func() aws.Retryer {
	return func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.MaxBackoff = 5 * time.Millisecond
			o.RateLimiter = ratelimit.None
		})
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	e := start(t, Options{Seed: 7, Faults: Faults{ThrottleRate: 0.5}})
	c := ctx(t)
	cfg := e.srv.AWSConfig()
	cfg.Retryer = patient(20)
	ec2c, efsc := ec2.NewFromConfig(cfg), efs.NewFromConfig(cfg)
	fsID, _ := e.srv.AddFileSystem(FileSystemSpec{})
	const n = 40
	for i := range n {
		if _, err := ec2c.DescribeVolumes(c, &ec2.DescribeVolumesInput{}); err != nil {
			t.Fatalf("DescribeVolumes %d: %v", i, err)
		}
		if _, err := efsc.DescribeAccessPoints(c, &efs.DescribeAccessPointsInput{FileSystemId: &fsID}); err != nil {
			t.Fatalf("DescribeAccessPoints %d: %v", i, err)
		}
	}
	for _, op := range []string{"DescribeVolumes", "DescribeAccessPoints"} {
		st := e.srv.Stats(op)
		if st.Throttled < n/4 || st.Calls != n+st.Throttled {
			t.Errorf("%s: %+v; want about half of the calls throttled and every call counted", op, st)
		}
	}

	// The same faults with the retries switched off do fail.
	_, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{}, noRetryEC2)
	for i := 0; err == nil && i < 50; i++ {
		_, err = e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{}, noRetryEC2)
	}
	if code, status, _ := apiErr(t, err); code != "RequestLimitExceeded" || status != 503 {
		t.Errorf("throttle without retries: %s %d", code, status)
	}
}

func TestInternalErrorsAreRetried(t *testing.T) {
	e := start(t, Options{Seed: 3, Faults: Faults{InternalErrorRate: 0.4, Operations: []string{"CreateVolume", "CreateAccessPoint"}}})
	c := ctx(t)
	cfg := e.srv.AWSConfig()
	cfg.Retryer = patient(20)
	ec2c, efsc := ec2.NewFromConfig(cfg), efs.NewFromConfig(cfg)
	fsID, _ := e.srv.AddFileSystem(FileSystemSpec{})
	for i := range 20 {
		if _, err := ec2c.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)}); err != nil {
			t.Fatalf("CreateVolume %d: %v", i, err)
		}
		if _, err := efsc.CreateAccessPoint(c, &efs.CreateAccessPointInput{FileSystemId: &fsID}); err != nil {
			t.Fatalf("CreateAccessPoint %d: %v", i, err)
		}
	}
	if st := e.srv.Stats("CreateVolume"); st.InternalErrors == 0 {
		t.Errorf("no internal errors injected: %+v", st)
	}
	if n := len(e.srv.VolumeIDs()); n != 20 {
		t.Errorf("%d volumes, want 20", n)
	}
	if e.srv.Stats("DescribeVolumes").InternalErrors != 0 {
		t.Error("faults leaked to an operation not listed")
	}
}

// TestLostResponses checks that the fault does the work and loses the
// answer, and that the SDK's retry with the same ClientToken leaves exactly
// one resource per request.
func TestLostResponses(t *testing.T) {
	for _, mode := range []LostResponseMode{LoseConnection, LoseAsInternalError} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			e := start(t, Options{Seed: 11, Faults: Faults{LostResponseRate: 0.5, LostResponse: mode,
				Operations: []string{"CreateVolume", "CreateAccessPoint", "AttachVolume"}}})
			c := ctx(t)
			cfg := e.srv.AWSConfig()
			cfg.Retryer = patient(20)
			ec2c, efsc := ec2.NewFromConfig(cfg), efs.NewFromConfig(cfg)
			fsID, _ := e.srv.AddFileSystem(FileSystemSpec{})
			const n = 15
			for i := range n {
				if _, err := ec2c.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1),
					ClientToken: aws.String(fmt.Sprintf("pvc-%d", i))}); err != nil {
					t.Fatalf("CreateVolume %d: %v", i, err)
				}
				// The SDK fills in a fresh token once per call and keeps it
				// across the call's retries.
				if _, err := efsc.CreateAccessPoint(c, &efs.CreateAccessPointInput{FileSystemId: &fsID,
					RootDirectory: &efstypes.RootDirectory{Path: aws.String(fmt.Sprintf("/pvc-%d", i))}}); err != nil {
					t.Fatalf("CreateAccessPoint %d: %v", i, err)
				}
			}
			for _, op := range []string{"CreateVolume", "CreateAccessPoint"} {
				st := e.srv.Stats(op)
				if st.LostResponses == 0 || st.Calls != n+st.LostResponses {
					t.Errorf("%s: %+v", op, st)
				}
			}
			if got := len(e.srv.VolumeIDs()); got != n {
				t.Errorf("%d volumes after %d creations, want exactly %d", got, n, n)
			}
			if got := len(e.srv.AccessPointIDs(fsID)); got != n {
				t.Errorf("%d access points after %d creations, want exactly %d", got, n, n)
			}
		})
	}

	// Without idempotency the same fault shows: AttachVolume has no token,
	// so the retry after a lost answer finds the volume already attached.
	t.Run("no token", func(t *testing.T) {
		e := start(t, Options{Faults: Faults{LostResponseRate: 1, Operations: []string{"AttachVolume"}}})
		c := ctx(t)
		_ = e.srv.AddInstance("i-00000000000000001", "", "")
		vol, _ := e.srv.AddVolume(VolumeSpec{})
		_, err := e.ec2.AttachVolume(c, &ec2.AttachVolumeInput{VolumeId: &vol, InstanceId: aws.String("i-00000000000000001"), Device: aws.String("/dev/xvdba")})
		if code, _, _ := apiErr(t, err); code != "VolumeInUse" {
			t.Errorf("retried attach: %s, want VolumeInUse", code)
		}
		if st, _, _ := e.srv.VolumeState(vol); st != "in-use" {
			t.Errorf("volume %s after a lost attach answer", st)
		}
	})
	t.Run("strict EFS tokens", func(t *testing.T) {
		e := start(t, Options{StrictAccessPointTokens: true, Faults: Faults{LostResponseRate: 1, Operations: []string{"CreateAccessPoint"}}})
		c := ctx(t)
		fsID, _ := e.srv.AddFileSystem(FileSystemSpec{})
		_, err := e.efs.CreateAccessPoint(c, &efs.CreateAccessPointInput{FileSystemId: &fsID})
		var exists *efstypes.AccessPointAlreadyExists
		if !errors.As(err, &exists) {
			t.Errorf("retried create with strict tokens: %v, want AccessPointAlreadyExists", err)
		}
		if got := len(e.srv.AccessPointIDs(fsID)); got != 1 {
			t.Errorf("%d access points, want 1", got)
		}
	})
}

func TestEventualConsistency(t *testing.T) {
	const hidden = 300 * time.Millisecond
	e := start(t, Options{Faults: Faults{Visibility: hidden}})
	c := ctx(t)
	fsID, _ := e.srv.AddFileSystem(FileSystemSpec{})
	begin := time.Now()
	vol, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := e.efs.CreateAccessPoint(c, &efs.CreateAccessPointInput{FileSystemId: &fsID})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{VolumeIds: []string{aws.ToString(vol.VolumeId)}}, noRetryEC2)
	if code, _, _ := apiErr(t, err); code != "InvalidVolume.NotFound" {
		t.Errorf("fresh volume by ID: %s", code)
	}
	list, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{})
	if err != nil || len(list.Volumes) != 0 {
		t.Errorf("fresh volume listed: %v, %v", list, err)
	}
	_, err = e.efs.DescribeAccessPoints(c, &efs.DescribeAccessPointsInput{AccessPointId: ap.AccessPointId}, noRetryEFS)
	var nf *efstypes.AccessPointNotFound
	if !errors.As(err, &nf) {
		t.Errorf("fresh access point by ID: %v", err)
	}
	if time.Since(begin) >= hidden {
		t.Skip("the machine was too slow to look inside the window")
	}
	eventually(t, "volume visible", 2*time.Second, func() bool {
		_, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{VolumeIds: []string{aws.ToString(vol.VolumeId)}})
		return err == nil
	})
	if waited := time.Since(begin); waited < hidden {
		t.Errorf("volume visible after %v, before the %v window", waited, hidden)
	}
	aps, err := e.efs.DescribeAccessPoints(c, &efs.DescribeAccessPointsInput{FileSystemId: &fsID})
	if err != nil || len(aps.AccessPoints) != 1 {
		t.Errorf("access point after the window: %v, %v", aps, err)
	}
}

func TestRateLimit(t *testing.T) {
	e := start(t, Options{Faults: Faults{RateLimits: map[string]RateLimit{
		"Describe*":       {Burst: 10, PerSecond: 2},
		"DescribeVolumes": {Burst: 5, PerSecond: 2},
	}}})
	c := ctx(t)
	burst := func(call func() error) (ok, throttled int) {
		for range 20 {
			err := call()
			if err == nil {
				ok++
				continue
			}
			if code, _, _ := apiErr(t, err); code != "RequestLimitExceeded" {
				t.Fatalf("unexpected %s", code)
			}
			throttled++
		}
		return ok, throttled
	}
	begin := time.Now()
	okV, thV := burst(func() error {
		_, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{}, noRetryEC2)
		return err
	})
	okS, thS := burst(func() error {
		_, err := e.ec2.DescribeSnapshots(c, &ec2.DescribeSnapshotsInput{}, noRetryEC2)
		return err
	})
	elapsed := time.Since(begin).Seconds()
	// Each API has its own bucket: its burst plus what refilled meanwhile.
	if okV < 5 || okV > 5+int(2*elapsed)+1 || thV != 20-okV {
		t.Errorf("DescribeVolumes: %d ok, %d throttled in %.2fs", okV, thV, elapsed)
	}
	if okS < 10 || okS > 10+int(2*elapsed)+1 || thS != 20-okS {
		t.Errorf("DescribeSnapshots: %d ok, %d throttled in %.2fs", okS, thS, elapsed)
	}
	if _, err := e.ec2.DescribeAvailabilityZones(c, &ec2.DescribeAvailabilityZonesInput{}, noRetryEC2); err != nil {
		t.Errorf("another API's bucket is full: %v", err)
	}
	if _, err := e.ec2.CreateTags(c, &ec2.CreateTagsInput{Resources: []string{"vol-x"}, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}, noRetryEC2); err == nil {
		t.Error("CreateTags of a missing volume succeeded")
	} else if code, _, _ := apiErr(t, err); code == "RequestLimitExceeded" {
		t.Error("an unlimited API was throttled")
	}
	time.Sleep(600 * time.Millisecond)
	if _, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{}, noRetryEC2); err != nil {
		t.Errorf("after refilling: %v", err)
	}
	if st := e.srv.Stats("DescribeVolumes"); st.Throttled != thV || st.Calls != 21 {
		t.Errorf("stats %+v", st)
	}
}

func TestLatency(t *testing.T) {
	e := start(t, Options{Faults: Faults{Latency: Delay{Min: 60 * time.Millisecond, Max: 80 * time.Millisecond}, Operations: []string{"DescribeVolumes"}}})
	c := ctx(t)
	begin := time.Now()
	if _, err := e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 60*time.Millisecond {
		t.Errorf("DescribeVolumes took %v, want at least 60ms", d)
	}
	begin = time.Now()
	if _, err := e.ec2.DescribeAvailabilityZones(c, &ec2.DescribeAvailabilityZonesInput{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d >= 60*time.Millisecond {
		t.Logf("unlisted operation took %v (slow machine?)", d)
	}
	if err := e.srv.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	_, _ = e.ec2.DescribeVolumes(c, &ec2.DescribeVolumesInput{})
	if d := time.Since(begin); d >= 60*time.Millisecond {
		t.Logf("latency after SetFaults cleared it: %v (slow machine?)", d)
	}
	if err := e.srv.SetFaults(Faults{ThrottleRate: 2}); err == nil {
		t.Error("SetFaults accepted a rate of 2")
	}
}

// TestDeterministic runs the same requests against two fakes with the
// same seed and expects the same IDs and the same faults.
func TestDeterministic(t *testing.T) {
	run := func(seed uint64) (ids []string, throttled int) {
		e := start(t, Options{Seed: seed, Faults: Faults{ThrottleRate: 0.3}})
		c := ctx(t)
		cfg := e.srv.AWSConfig()
		cfg.Retryer = patient(30)
		client := ec2.NewFromConfig(cfg)
		for i := range 10 {
			out, err := client.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1), ClientToken: aws.String(fmt.Sprint(i))})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, aws.ToString(out.VolumeId))
		}
		return ids, e.srv.Stats("CreateVolume").Throttled
	}
	a, ta := run(42)
	b, tb := run(42)
	d, _ := run(43)
	if fmt.Sprint(a) != fmt.Sprint(b) || ta != tb {
		t.Errorf("seed 42 twice: %v/%d and %v/%d", a, ta, b, tb)
	}
	if fmt.Sprint(a) == fmt.Sprint(d) {
		t.Error("seeds 42 and 43 gave the same IDs")
	}
}

// TestConcurrentUse drives both APIs from many goroutines under faults;
// run it with -race.
func TestConcurrentUse(t *testing.T) {
	e := start(t, Options{Seed: 5, Faults: Faults{ThrottleRate: 0.1, LostResponseRate: 0.1,
		Operations: []string{"CreateVolume", "DescribeVolumes", "CreateAccessPoint", "DescribeAccessPoints"}}})
	c := ctx(t)
	cfg := e.srv.AWSConfig()
	cfg.Retryer = patient(30)
	ec2c, efsc := ec2.NewFromConfig(cfg), efs.NewFromConfig(cfg)
	fsID, _ := e.srv.AddFileSystem(FileSystemSpec{})
	const workers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*4)
	for w := range workers {
		inst := fmt.Sprintf("i-%017d", w)
		if err := e.srv.AddInstance(inst, "us-east-1a", ""); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range each {
				vol, err := ec2c.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1),
					ClientToken: aws.String(fmt.Sprintf("w%d-%d", w, i))})
				if err != nil {
					errs <- err
					return
				}
				id := aws.ToString(vol.VolumeId)
				waitErr := ec2.NewVolumeAvailableWaiter(ec2c, fastWaiter).Wait(c, &ec2.DescribeVolumesInput{VolumeIds: []string{id}}, 10*time.Second)
				if waitErr != nil {
					errs <- waitErr
					return
				}
				if _, err := ec2c.AttachVolume(c, &ec2.AttachVolumeInput{VolumeId: &id, InstanceId: &inst, Device: aws.String("/dev/xvdb" + string(rune('a'+i)))}); err != nil {
					errs <- err
					return
				}
				if _, err := efsc.CreateAccessPoint(c, &efs.CreateAccessPointInput{FileSystemId: &fsID}); err != nil {
					errs <- err
				}
				if _, err := efsc.DescribeAccessPoints(c, &efs.DescribeAccessPointsInput{FileSystemId: &fsID}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := len(e.srv.VolumeIDs()), workers*(each+1); got != want {
		t.Errorf("%d volumes, want %d", got, want)
	}
	if got := len(e.srv.AccessPointIDs(fsID)); got != workers*each {
		t.Errorf("%d access points, want %d", got, workers*each)
	}
	out, err := ec2c.DescribeInstances(c, &ec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range out.Reservations {
		if n := len(r.Instances[0].BlockDeviceMappings); n != each+1 {
			t.Errorf("%s has %d block devices, want %d", aws.ToString(r.Instances[0].InstanceId), n, each+1)
		}
	}
}
