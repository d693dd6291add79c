package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ec2csi/ec2csi/deploy/iam"
)

func init() { extraCommands = append(extraCommands, newPolicyCommand) }

func newPolicyCommand() *cobra.Command {
	var kmsKeys []string
	cmd := &cobra.Command{
		Use:   "policy efs|ebs",
		Short: "Print the least-privilege IAM policy a driver needs on AWS",
		Long: `Print the IAM policy (JSON) the EFS or EBS controller needs on --cloud aws.

Attach it to the role the controller runs as (IRSA, EKS Pod Identity or the
instance profile). Deleting and changing resources is allowed only for those
the drivers tagged when creating them (efs.csi.aws.com/cluster=true,
ebs.csi.aws.com/cluster=true), as with the upstream drivers' policies. For
EBS volumes encrypted with customer managed KMS keys, name the keys with
--kms-key. The files are deploy/iam/efs-policy.json and ebs-policy.json.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"efs", "ebs"},
		RunE: func(cmd *cobra.Command, args []string) error {
			var doc []byte
			switch args[0] {
			case "efs":
				if len(kmsKeys) > 0 {
					return fmt.Errorf("--kms-key applies to ebs: EFS encryption at rest needs no permission of the driver")
				}
				doc = iam.EFS
			case "ebs":
				doc = iam.EBS
			default:
				return fmt.Errorf("policy %q: choose efs or ebs", args[0])
			}
			if len(kmsKeys) > 0 {
				p, err := iam.Parse(doc)
				if err != nil {
					return err
				}
				p.WithKMSKeys(kmsKeys)
				if doc, err = json.MarshalIndent(p, "", "  "); err != nil {
					return err
				}
				doc = append(doc, '\n')
			}
			_, err := cmd.OutOrStdout().Write(doc)
			return err
		},
	}
	cmd.Flags().StringArrayVar(&kmsKeys, "kms-key", nil, "ARN of a KMS key EBS volumes are encrypted with (repeatable; ebs only)")
	return cmd
}
