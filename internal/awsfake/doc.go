// Package awsfake is a stand-in for the Amazon EFS and EC2 APIs that the
// real aws-sdk-go-v2 clients can talk to. It speaks the wire protocols
// those clients use — REST-JSON for EFS, the EC2 Query protocol with XML
// answers for EC2 — so their serializers, retryers, paginators, waiters
// and error parsing are all exercised without an AWS account.
//
// Resources move through the states AWS gives them (a volume is creating,
// then available, then in-use) after configurable delays, and faults can
// be injected deterministically: throttling, internal errors, latency,
// answers lost after the work was done, eventual consistency and per-API
// token buckets. Per-operation counters tell tests and benchmarks how many
// requests their code really made.
//
// In a test:
//
//	srv, err := awsfake.Start(awsfake.Options{Seed: 1})
//	...
//	defer srv.Close()
//	srv.AddInstance("i-0123456789abcdef0", "us-east-1a", "m5.large")
//	fsID, _ := srv.AddFileSystem(awsfake.FileSystemSpec{Name: "shared"})
//	srv.AddAccessPoints(fsID, 10000)
//	cfg := srv.AWSConfig() // region, static credentials, BaseEndpoint
//	ec2Client, efsClient := ec2.NewFromConfig(cfg), efs.NewFromConfig(cfg)
//	...
//	srv.SetFaults(awsfake.Faults{ThrottleRate: 0.2})
//	n := srv.Calls("DescribeVolumes")
//
// Outside Go, point the SDK at a running fake (see Serve and the
// "ec2csi dev fake-aws" command) with AWS_ENDPOINT_URL, or
// AWS_ENDPOINT_URL_EFS and AWS_ENDPOINT_URL_EC2. IMDS serves the instance
// metadata of one fake instance.
//
// Where AWS's documented behaviour and the behaviour users report differ,
// the fake picks one, says which where it does so, and offers the other as
// an option where tests may need it (Options.StrictAccessPointTokens).
package awsfake
