package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ec2csi/ec2csi/internal/cloud/local"
)

func init() { extraCommands = append(extraCommands, newLocalCommand) }

func newLocalCommand() *cobra.Command {
	stateDir := "/var/lib/ec2csi"
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Manage the embedded local backend's file systems and volumes",
	}
	cmd.PersistentFlags().StringVar(&stateDir, "state-dir", stateDir, "the local backend's state directory (as given to serve)")

	var id, name string
	create := &cobra.Command{
		Use:   "create-filesystem",
		Short: "Create an EFS-like file system (idempotent) and print its ID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := local.Open(cmd.Context(), stateDir, local.Options{})
			if err != nil {
				return err
			}
			fs, err := b.CreateFileSystem(cmd.Context(), id, name)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), fs.ID)
			return err
		},
	}
	create.Flags().StringVar(&id, "id", "", "file system ID, fs- and 8 or 17 hex digits (default: a random one)")
	create.Flags().StringVar(&name, "name", "", "a name to remember it by")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the local backend's file systems",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := local.Open(cmd.Context(), stateDir, local.Options{})
			if err != nil {
				return err
			}
			fss, err := b.ListFileSystems(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "FILE SYSTEM\tNAME\tACCESS POINTS\tCREATED")
			for _, fs := range fss {
				n, err := b.AccessPointCount(cmd.Context(), fs.ID)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", fs.ID, fs.Name, n, fs.CreationTime.Format("2006-01-02 15:04:05"))
			}
			return w.Flush()
		},
	}
	cmd.AddCommand(create, list)
	return cmd
}
