package awsfake_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/efs"

	"github.com/ec2csi/ec2csi/internal/awsfake"
)

// Start a fake, seed it, and use it through the real SDK clients.
func Example() {
	srv, err := awsfake.Start(awsfake.Options{Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	if err := srv.AddInstance("i-0123456789abcdef0", "us-east-1b", "m5.large"); err != nil {
		log.Fatal(err)
	}
	fsID, err := srv.AddFileSystem(awsfake.FileSystemSpec{Name: "shared"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := srv.AddAccessPoints(fsID, 3); err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	cfg := srv.AWSConfig() // region, static credentials, BaseEndpoint
	inst, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	if err != nil {
		log.Fatal(err)
	}
	aps, err := efs.NewFromConfig(cfg).DescribeAccessPoints(ctx, &efs.DescribeAccessPointsInput{FileSystemId: &fsID})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(aws.ToString(inst.Reservations[0].Instances[0].Placement.AvailabilityZone))
	fmt.Println(len(aps.AccessPoints), srv.Calls("DescribeAccessPoints"))
	// Output:
	// us-east-1b
	// 3 1
}
