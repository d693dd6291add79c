package metadata

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// IdentityDocument is the part of IMDS's instance identity document the
// drivers use.
type IdentityDocument struct {
	Region, AvailabilityZone, InstanceID, InstanceType string
}

// IMDS is the instance metadata service.
type IMDS interface {
	IdentityDocument(ctx context.Context) (IdentityDocument, error)
	// List returns the entries of a metadata directory, e.g.
	// "block-device-mapping".
	List(ctx context.Context, path string) ([]string, error)
	// Count returns how many entries a metadata directory has.
	Count(ctx context.Context, path string) (int, error)
}

// sdkIMDS is IMDSv2 through the SDK's client.
type sdkIMDS struct {
	client *imds.Client
}

// NewIMDS returns an IMDS client that gives up quickly: one retry, a
// second per request, no fallback to IMDSv1. Without an IMDSv2 token the
// hop limit is the usual cause (a pod one hop further than the instance),
// and IMDSv1 would only add another timeout. cfg supplies
// AWS_EC2_METADATA_SERVICE_ENDPOINT and AWS_EC2_METADATA_DISABLED when it
// comes from config.LoadDefaultConfig; endpoint, if set, overrides them.
func NewIMDS(cfg aws.Config, endpoint string) IMDS {
	c := imds.NewFromConfig(cfg, func(o *imds.Options) {
		if endpoint != "" {
			o.Endpoint = endpoint
		}
		o.HTTPClient = &http.Client{Timeout: time.Second}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 2
			so.MaxBackoff = 100 * time.Millisecond
		})
		o.EnableFallback = aws.FalseTernary
		o.DisableDefaultMaxBackoff = true // keep our 100 ms, not the client's 1 s
	})
	return sdkIMDS{client: c}
}

func (s sdkIMDS) IdentityDocument(ctx context.Context) (IdentityDocument, error) {
	out, err := s.client.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return IdentityDocument{}, fmt.Errorf("IMDS identity document: %w", err)
	}
	return IdentityDocument{Region: out.Region, AvailabilityZone: out.AvailabilityZone, InstanceID: out.InstanceID, InstanceType: out.InstanceType}, nil
}

func (s sdkIMDS) List(ctx context.Context, path string) ([]string, error) {
	out, err := s.client.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return nil, fmt.Errorf("IMDS %s: %w", path, err)
	}
	defer out.Content.Close()
	var names []string
	sc := bufio.NewScanner(out.Content)
	for sc.Scan() {
		if n := strings.TrimSuffix(strings.TrimSpace(sc.Text()), "/"); n != "" {
			names = append(names, n)
		}
	}
	return names, sc.Err()
}

func (s sdkIMDS) Count(ctx context.Context, path string) (int, error) {
	names, err := s.List(ctx, path)
	return len(names), err
}
