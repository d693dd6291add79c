// Package iam ships the least-privilege IAM policies of the drivers on
// AWS, as the JSON files beside this one, for `ec2csi policy` to print.
// The conditions rely on the tags the drivers put on what they create:
// efs.csi.aws.com/cluster=true on access points, ebs.csi.aws.com/cluster=true
// on volumes and snapshots (the upstream drivers' tags, so policies written
// for them keep working).
package iam

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// EFS is the policy the EFS controller needs.
//
//go:embed efs-policy.json
var EFS []byte

// EBS is the policy the EBS controller needs (the node needs only
// ec2:DescribeInstances, and that only without IMDS).
//
//go:embed ebs-policy.json
var EBS []byte

// Policy is an IAM policy document.
type Policy struct {
	Version   string
	Statement []Statement
}

// Statement is one statement of a policy.
type Statement struct {
	Sid       string         `json:",omitempty"`
	Effect    string         `json:"Effect"`
	Action    StringList     `json:"Action"`
	Resource  StringList     `json:"Resource"`
	Condition map[string]any `json:",omitempty"`
}

// StringList is IAM's string-or-list value.
type StringList []string

// UnmarshalJSON reads a string or a list of strings.
func (s *StringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = StringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*s = many
	return nil
}

// Parse reads a policy document.
func Parse(b []byte) (*Policy, error) {
	var p Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("IAM policy: %w", err)
	}
	return &p, nil
}

// WithKMSKeys adds what EBS needs to create and attach volumes encrypted
// with customer managed KMS keys: without it EBS deletes such a volume
// while creating it (the "ghost volume"). Grants are allowed only for AWS
// services (EBS), as AWS recommends.
func (p *Policy) WithKMSKeys(keyARNs []string) {
	if len(keyARNs) == 0 {
		return
	}
	p.Statement = append(p.Statement,
		Statement{
			Sid:       "KMSGrantsForEBS",
			Effect:    "Allow",
			Action:    StringList{"kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"},
			Resource:  keyARNs,
			Condition: map[string]any{"Bool": map[string]string{"kms:GrantIsForAWSResource": "true"}},
		},
		Statement{
			Sid:      "KMSUseForEBS",
			Effect:   "Allow",
			Action:   StringList{"kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*"},
			Resource: keyARNs,
		})
}

// Allows reports whether some statement of the policy allows action
// (e.g. "ec2:AttachVolume"), ignoring resources and conditions.
func (p *Policy) Allows(action string) bool {
	for _, s := range p.Statement {
		if s.Effect != "Allow" {
			continue
		}
		for _, a := range s.Action {
			if a == action {
				return true
			}
		}
	}
	return false
}
