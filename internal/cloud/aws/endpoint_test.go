package aws_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/ec2csi/ec2csi/internal/awsfake"
	awscloud "github.com/ec2csi/ec2csi/internal/cloud/aws"
)

// TestEndpointEnvironment checks that config.LoadDefaultConfig, which the
// plugin uses, honours the SDK's endpoint variables for both services:
// AWS_ENDPOINT_URL_EFS and AWS_ENDPOINT_URL_EC2 win over AWS_ENDPOINT_URL.
func TestEndpointEnvironment(t *testing.T) {
	efsFake := startFake(t, awsfake.Options{Seed: 51})
	ec2Fake := startFake(t, awsfake.Options{Seed: 52})
	fsID, err := efsFake.AddFileSystem(awsfake.FileSystemSpec{Name: "env"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_ENDPOINT_URL_EFS", efsFake.URL)
	t.Setenv("AWS_ENDPOINT_URL_EC2", ec2Fake.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDAWSFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "awsfake-secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30e9)
	o := fastOptions(nil)
	o.Retry.MaxAttempts = 1
	if _, err := awscloud.NewEFS(cfg, o).DescribeFileSystem(ctx, fsID); err != nil {
		t.Errorf("EFS through AWS_ENDPOINT_URL_EFS: %v", err)
	}
	if _, err := awscloud.NewEBS(cfg, o, nil).DescribeInstance(ctx, testInstance); err != nil {
		t.Errorf("EC2 through AWS_ENDPOINT_URL_EC2: %v", err)
	}
	if efsFake.Calls("DescribeFileSystems") != 1 || ec2Fake.Calls("DescribeInstances") != 1 {
		t.Errorf("calls went elsewhere: EFS fake %v, EC2 fake %v", efsFake.AllStats(), ec2Fake.AllStats())
	}
}
