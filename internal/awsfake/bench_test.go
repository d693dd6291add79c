package awsfake

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/efs"
)

// BenchmarkDescribeVolumes measures a round trip through the SDK and the
// fake, the floor under any benchmark of code using it.
func BenchmarkDescribeVolumes(b *testing.B) {
	s, err := Start(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for range 100 {
		if _, err := s.AddVolume(VolumeSpec{}); err != nil {
			b.Fatal(err)
		}
	}
	client := ec2.NewFromConfig(s.AWSConfig())
	c := b.Context()
	for b.Loop() {
		if _, err := client.DescribeVolumes(c, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(50)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.Calls("DescribeVolumes"))/float64(b.N), "calls/op")
}

// BenchmarkAccessPointPage lists one page of a file system at its quota.
func BenchmarkAccessPointPage(b *testing.B) {
	s, err := Start(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fsID, _ := s.AddFileSystem(FileSystemSpec{})
	if _, err := s.AddAccessPoints(fsID, 10000); err != nil {
		b.Fatal(err)
	}
	client := efs.NewFromConfig(s.AWSConfig())
	c := b.Context()
	for b.Loop() {
		if _, err := client.DescribeAccessPoints(c, &efs.DescribeAccessPointsInput{FileSystemId: &fsID, MaxResults: aws.Int32(100)}); err != nil {
			b.Fatal(err)
		}
	}
}
