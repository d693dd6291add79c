package awsfake

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/efs"
)

// TestServeWithEnvironment runs the fake as the dev command does and
// points clients at it the standard way, through AWS_ENDPOINT_URL_*.
func TestServeWithEnvironment(t *testing.T) {
	dir := t.TempDir()
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(c, "127.0.0.1:0", dir, Options{
			Region:      "eu-west-1",
			Instances:   []InstanceSpec{{ID: "i-0aaaaaaaaaaaaaaaa", Zone: "eu-west-1b"}},
			FileSystems: []FileSystemSpec{{ID: "fs-0bbbbbbbbbbbbbbbb"}},
		})
	}()
	var url string
	eventually(t, "endpoint file", 5*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "endpoint"))
		url = strings.TrimSpace(string(b))
		return err == nil && url != ""
	})
	for _, vars := range []map[string]string{
		{"AWS_ENDPOINT_URL_EC2": url, "AWS_ENDPOINT_URL_EFS": url},
		{"AWS_ENDPOINT_URL": url},
	} {
		for k, v := range vars {
			t.Setenv(k, v)
		}
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDAWSFAKE")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
		t.Setenv("AWS_REGION", "eu-west-1")
		t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		cfg, err := config.LoadDefaultConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := ec2.NewFromConfig(cfg).DescribeInstances(c, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0aaaaaaaaaaaaaaaa"}})
		if err != nil || *inst.Reservations[0].Instances[0].Placement.AvailabilityZone != "eu-west-1b" {
			t.Fatalf("DescribeInstances via %v: %v, %v", vars, inst, err)
		}
		fs, err := efs.NewFromConfig(cfg).DescribeMountTargets(c, &efs.DescribeMountTargetsInput{FileSystemId: ptr("fs-0bbbbbbbbbbbbbbbb")})
		if err != nil || len(fs.MountTargets) != 3 {
			t.Fatalf("DescribeMountTargets via %v: %v, %v", vars, fs, err)
		}
		for k := range vars {
			os.Unsetenv(k)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"rate above 1":         {Faults: Faults{LostResponseRate: 1.5}},
		"delay max below min":  {Delays: &Delays{Default: Delay{Min: time.Second, Max: time.Millisecond}}},
		"devices without root": {Devices: &FileDevices{Dir: t.TempDir()}},
		"instance in no zone":  {Instances: []InstanceSpec{{Zone: "mars-1a"}}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func ptr[T any](v T) *T { return &v }
