// Command efscreate measures EFS dynamic provisioning on --cloud aws at
// scale: an `ec2csi serve --driver efs --mode controller --cloud aws`
// process against the AWS fake, on a file system that already has 10,000
// access points, with the EFS API limited to 50 requests a second like an
// account's quota. It makes 500 volumes and prints key=value lines: API
// calls per create (the GID cache makes a steady-state create cost one
// CreateAccessPoint) and the wall time against the floor the API limit
// sets (500 / 50 s). It runs twice: with --aws-api-rate-limit matching the
// API's limit, and with the SDK's adaptive retries alone.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ec2csi/ec2csi/bench/internal/serveproc"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/ec2csi/ec2csi/internal/awsfake"
)

func main() {
	bin := flag.String("bin", "bin/ec2csi", "ec2csi binary")
	existing := flag.Int("existing", 10000, "access points already on the file system")
	creates := flag.Int("creates", 500, "volumes to create")
	rate := flag.Float64("rate", 50, "the EFS API's limit, requests a second (each API its own bucket)")
	burst := flag.Int("burst", 10, "the API limit's burst")
	clientBurst := flag.Int("client-burst", 5, "the burst of --aws-api-rate-limit: below the API's, so that the API's bucket never runs dry when requests arrive a little unevenly")
	parallel := flag.Int("parallel", 50, "CreateVolume calls in flight, as the external-provisioner's workers")
	flag.Parse()
	if err := run(*bin, *existing, *creates, *rate, *burst, *clientBurst, *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "efscreate:", err)
		os.Exit(1)
	}
}

func run(bin string, existing, creates int, rate float64, burst, clientBurst, parallel int) error {
	dir, err := os.MkdirTemp("", "efs-create-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := awsfake.Start(awsfake.Options{Seed: 1, AccessPointLimit: existing + creates + 100})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("existing_access_points=%d\ncreates=%d\napi_limit_per_second=%g\napi_limit_burst=%d\nparallel=%d\n", existing, creates, rate, burst, parallel)

	limit := fmt.Sprintf("*=%g:%d", rate, clientBurst)
	for _, c := range []struct{ prefix, clientLimit string }{{"", limit}, {"no_client_limit_", ""}} {
		fsID, err := srv.AddFileSystem(awsfake.FileSystemSpec{Name: "bench" + c.prefix})
		if err != nil {
			return err
		}
		if _, err := srv.AddAccessPoints(fsID, existing); err != nil {
			return err
		}
		// Fresh buckets, fresh counters.
		if err := srv.SetFaults(awsfake.Faults{RateLimits: map[string]awsfake.RateLimit{"*": {Burst: burst, PerSecond: rate}}}); err != nil {
			return err
		}
		srv.ResetStats()
		if err := measure(bin, dir, srv, fsID, c.prefix, c.clientLimit, existing, creates, rate, parallel); err != nil {
			return err
		}
	}
	return nil
}

func measure(bin, dir string, srv *awsfake.Server, fsID, prefix, clientLimit string, existing, creates int, rate float64, parallel int) error {
	sock := filepath.Join(dir, prefix+"efs.sock")
	args := []string{"--cloud", "aws", "--driver", "efs", "--mode", "controller", "--region", "us-east-1",
		"--state-dir", filepath.Join(dir, prefix+"state"), "--endpoint", "unix://" + sock, "--log-level", "error"}
	if clientLimit != "" {
		args = append(args, "--aws-api-rate-limit", clientLimit)
	}
	p, err := serveproc.Start(bin, sock, serveproc.FakeAWSEnv(srv.URL, dir), args...)
	if err != nil {
		return err
	}
	defer p.Kill()
	ctrl := p.Ctrl

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	params := map[string]string{
		"provisioningMode": "efs-ap", "fileSystemId": fsID,
		// The default range (50000-60000) is nearly used up by the 10,000
		// access points already there.
		"gidRangeStart": "50000", "gidRangeEnd": "70000",
	}
	capability := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
	}
	work := make(chan int)
	var mu sync.Mutex
	var failed, retried int
	handles := map[string]bool{}
	var lat []time.Duration
	start := time.Now()
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range work {
				t0 := time.Now()
				var resp *csi.CreateVolumeResponse
				var err error
				for attempt := 0; attempt < 5; attempt++ { // as the provisioner retries
					resp, err = ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
						Name: prefix + "pvc-" + strconv.Itoa(i), Parameters: params,
						VolumeCapabilities: []*csi.VolumeCapability{capability},
					})
					if err == nil {
						break
					}
					mu.Lock()
					retried++
					mu.Unlock()
				}
				mu.Lock()
				if err != nil {
					failed++
					fmt.Fprintln(os.Stderr, "efscreate: CreateVolume:", err)
				} else {
					handles[resp.GetVolume().GetVolumeId()] = true
				}
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		})
	}
	for i := range creates {
		work <- i
	}
	close(work)
	wg.Wait()
	wall := time.Since(start)

	var calls, throttled int
	for _, st := range srv.AllStats() {
		calls += st.Calls
		throttled += st.Throttled
	}
	floor := float64(creates) / rate
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("%sclient_rate_limit=%q\n", prefix, clientLimit)
	fmt.Printf("%sefs_api_calls_per_create=%.3f\n", prefix, float64(calls)/float64(creates))
	fmt.Printf("%screate_wall_vs_api_floor=%.3f\n", prefix, wall.Seconds()/floor)
	fmt.Printf("%swall_seconds=%.2f\n", prefix, wall.Seconds())
	fmt.Printf("%sapi_floor_seconds=%.2f\n", prefix, floor)
	fmt.Printf("%sapi_calls=%d\n", prefix, calls)
	fmt.Printf("%sapi_calls_throttled=%d\n", prefix, throttled)
	fmt.Printf("%sdescribe_access_points_calls=%d\n", prefix, srv.Calls("DescribeAccessPoints"))
	fmt.Printf("%screate_access_point_calls=%d\n", prefix, srv.Calls("CreateAccessPoint"))
	fmt.Printf("%screate_p50_ms=%.0f\n%screate_p99_ms=%.0f\n", prefix, ms(lat, 0.5), prefix, ms(lat, 0.99))
	fmt.Printf("%screates_failed=%d\n%screates_retried=%d\n", prefix, failed, prefix, retried)
	aps := len(srv.AccessPointIDs(fsID))
	fmt.Printf("%saccess_points_after=%d\n", prefix, aps)
	if failed > 0 || len(handles) != creates || aps != existing+creates {
		return fmt.Errorf("%d creates failed, %d distinct volumes, %d access points: want 0, %d, %d", failed, len(handles), aps, creates, existing+creates)
	}
	return nil
}

func ms(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(q*float64(len(sorted)-1))].Microseconds()) / 1000
}
