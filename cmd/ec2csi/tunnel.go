package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/spf13/cobra"

	"github.com/ec2csi/ec2csi/internal/efscert"
	"github.com/ec2csi/ec2csi/internal/tunnel"
	"github.com/ec2csi/ec2csi/internal/version"
)

func init() {
	extraCommands = append(extraCommands, newTunnelCommand, newTunnelDaemonCommand)
}

const defaultTunnelStateDir = "/run/ec2csi/tunnel"

func newTunnelCommand() *cobra.Command {
	var (
		c      tunnel.SingleConfig
		listen string
	)
	cmd := &cobra.Command{
		Use:   "tunnel",
		Short: "Run one EFS TLS tunnel in the foreground",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.Listen = listen
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			c.ClientInfo = clientInfo()
			if c.Spec.IAM {
				creds, err := loadCredentials(cmd)
				if err != nil {
					return err
				}
				c.Credentials = creds
			}
			return tunnel.RunSingle(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:20049", "local address the NFS client connects to")
	f.StringVar(&c.Spec.Target, "target", "", "mount target, HOST:PORT (the file system's DNS name or a mount target IP, port 2049)")
	f.StringVar(&c.Spec.ServerName, "server-name", "", "name the server certificate must carry, sent as SNI")
	f.StringVar(&c.Spec.CAFile, "ca", "", "PEM bundle trusted besides the system roots")
	f.StringVar(&c.Spec.FileSystemID, "fs-id", "", "file system ID for the client certificate (none: no client certificate)")
	f.StringVar(&c.Spec.AccessPointID, "access-point", "", "access point ID for the client certificate")
	f.BoolVar(&c.Spec.IAM, "iam", false, "sign the client certificate with AWS credentials (IAM authorization)")
	f.StringVar(&c.Spec.Region, "region", "", "region of the IAM signature (default: from --server-name)")
	f.StringVar(&c.StateDir, "state-dir", defaultTunnelStateDir, "directory of the node key")
	cmd.MarkFlagRequired("target")
	cmd.MarkFlagRequired("server-name")
	return cmd
}

func newTunnelDaemonCommand() *cobra.Command {
	var (
		c         tunnel.DaemonConfig
		portRange string
	)
	cmd := &cobra.Command{
		Use:   "tunnel-daemon",
		Short: "Serve EFS TLS tunnels to node plugins over a unix socket in the state directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lo, hi, err := parsePortRange(portRange)
			if err != nil {
				return err
			}
			c.Manager.PortMin, c.Manager.PortMax = lo, hi
			c.Manager.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			c.Manager.ClientInfo = clientInfo()
			// Credentials are looked up only when an IAM tunnel signs.
			if creds, err := loadCredentials(cmd); err != nil {
				c.Manager.Logger.Warn("no AWS credentials; IAM tunnels will fail", "err", err)
			} else {
				c.Manager.Credentials = creds
			}
			return tunnel.RunDaemon(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Manager.StateDir, "state-dir", defaultTunnelStateDir, "state directory: lock, node key, socket, state.db (use a tmpfs such as /run)")
	f.StringVar(&portRange, "port-range", fmt.Sprintf("%d-%d", tunnel.DefaultPortMin, tunnel.DefaultPortMax), "local ports for tunnels, LOW-HIGH")
	f.StringVar(&c.MetricsAddress, "metrics-address", "", "serve Prometheus /metrics on this address (off when empty)")
	return cmd
}

func parsePortRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("--port-range %q: want LOW-HIGH within 1-65535", s)
	}
	return lo, hi, nil
}

func loadCredentials(cmd *cobra.Command) (aws.CredentialsProvider, error) {
	cfg, err := config.LoadDefaultConfig(cmd.Context())
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg.Credentials, nil
}

func clientInfo() *efscert.ClientInfo {
	return &efscert.ClientInfo{Source: "ec2csi", Version: version.Get()}
}
