package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ec2csi/ec2csi/internal/version"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "ec2csi",
		Short:         "CSI drivers for Amazon EFS and EBS, on EKS, self-managed EC2 or a local machine",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCommand(),
	)
	for _, add := range extraCommands {
		root.AddCommand(add())
	}
	return root
}

// extraCommands lets each command file register itself from an init
// function, so adding a subcommand never needs an edit here.
var extraCommands []func() *cobra.Command

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version.Get())
			return err
		},
	}
}
