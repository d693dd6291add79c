package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/ec2csi/ec2csi/deploy/iam"
)

func runPolicy(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"policy"}, args...))
	err := root.Execute()
	return out.Bytes(), err
}

func TestPolicyCommand(t *testing.T) {
	for _, d := range []string{"efs", "ebs"} {
		out, err := runPolicy(t, d)
		if err != nil {
			t.Fatalf("policy %s: %v", d, err)
		}
		if !json.Valid(out) {
			t.Errorf("policy %s is not JSON", d)
		}
	}
	efs, _ := runPolicy(t, "efs")
	p, err := iam.Parse(efs)
	if err != nil {
		t.Fatal(err)
	}
	// Access point deletion only for the driver's own, as upstream.
	for _, s := range p.Statement {
		for _, a := range s.Action {
			if a == "elasticfilesystem:DeleteAccessPoint" && s.Condition == nil {
				t.Errorf("DeleteAccessPoint allowed without a condition")
			}
		}
	}

	out, err := runPolicy(t, "ebs", "--kms-key", "arn:aws:kms:us-east-1:123456789012:key/k1")
	if err != nil {
		t.Fatal(err)
	}
	p, err = iam.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext", "ec2:CreateVolume"} {
		if !p.Allows(a) {
			t.Errorf("ebs policy with --kms-key does not allow %s", a)
		}
	}
	if _, err := runPolicy(t, "s3"); err == nil {
		t.Error("policy s3 accepted")
	}
	if _, err := runPolicy(t, "efs", "--kms-key", "arn:x"); err == nil {
		t.Error("--kms-key accepted for efs")
	}
}
