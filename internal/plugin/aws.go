package plugin

import (
	"context"
	"errors"
)

// newAWSBackend builds the AWS backend (aws-sdk-go-v2).
func newAWSBackend(ctx context.Context, cfg Config) (backend, error) {
	return nil, errors.New("--cloud aws is not available in this build yet; use --cloud local")
}
