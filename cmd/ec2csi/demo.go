package main

import (
	"github.com/spf13/cobra"

	"github.com/ec2csi/ec2csi/internal/demo"
)

func init() { extraCommands = append(extraCommands, newDemoCommand) }

func newDemoCommand() *cobra.Command {
	var opts demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Walk through the life of a volume on a temporary local backend",
		Long: `Walk through the life of a volume: the plugin runs in-process on a temporary
state directory and the demo makes the CSI calls Kubernetes would (create,
publish to two pods, write and read, unpublish, delete), printing each one.
Needs root (it mounts). It cleans up after itself, also when interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo.Run(cmd.Context(), cmd.OutOrStdout(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "where to make the temporary directory (default: the system's)")
	return cmd
}
