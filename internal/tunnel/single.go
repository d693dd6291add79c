package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ec2csi/ec2csi/internal/efscert"
)

// SingleConfig configures RunSingle.
type SingleConfig struct {
	// Listen is the local address, e.g. 127.0.0.1:20049.
	Listen string
	// Spec says where to and as whom. An empty FileSystemID presents no
	// client certificate, which suits a TLS server that is not EFS.
	Spec Spec
	// StateDir holds the node key. Required with a FileSystemID.
	StateDir string
	// Credentials sign the certificate when Spec.IAM is set.
	Credentials aws.CredentialsProvider
	// ClientInfo goes into the certificate when set.
	ClientInfo *efscert.ClientInfo
	// Registerer receives the tunnel's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Ready, when set, receives the bound address once the tunnel accepts.
	Ready chan<- net.Addr
}

// RunSingle runs one tunnel in the foreground until ctx ends, with no
// Manager and no state besides the node key.
func RunSingle(ctx context.Context, c SingleConfig) error {
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	if c.Spec.Target == "" || c.Spec.ServerName == "" {
		return errors.New("tunnel: a target and a server name are required")
	}
	roots, err := LoadRoots(c.Spec.CAFile)
	if err != nil {
		return err
	}
	var getCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	if c.Spec.FileSystemID != "" {
		if err := c.Spec.Validate(); err != nil {
			return err
		}
		if c.StateDir == "" {
			return errors.New("tunnel: a state directory is needed for the node key")
		}
		key, err := efscert.LoadOrCreateKey(c.StateDir)
		if err != nil {
			return err
		}
		ic := efscert.IssuerConfig{
			Key: key,
			Request: efscert.Request{
				FileSystemID: c.Spec.FileSystemID, AccessPointID: c.Spec.AccessPointID,
				Region: c.Spec.region(), ClientInfo: c.ClientInfo,
			},
			Logger: log,
		}
		if c.Spec.IAM {
			if c.Credentials == nil {
				return errors.New("tunnel: IAM asked for but no AWS credentials are configured")
			}
			ic.Credentials = c.Credentials
		}
		issuer, err := efscert.NewIssuer(ic)
		if err != nil {
			return err
		}
		// Sign up front so a broken identity shows at start, not at the
		// first mount.
		if _, err := issuer.Certificate(ctx); err != nil {
			return err
		}
		getCert = issuer.GetClientCertificate
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("tunnel: listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	metrics, err := NewMetrics(c.Registerer)
	if err != nil {
		ln.Close()
		return err
	}
	t, err := New(Config{
		Target: c.Spec.Target, TLS: ClientTLSConfig(c.Spec.ServerName, roots, getCert),
		Metrics: metrics, Port: port, FileSystemID: c.Spec.FileSystemID, Logger: log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	go func() {
		<-ctx.Done()
		t.Close()
	}()
	log.Info("tunnel serving", "listen", ln.Addr().String(), "target", c.Spec.Target, "serverName", c.Spec.ServerName,
		"fileSystem", c.Spec.FileSystemID, "port", strconv.Itoa(port))
	if c.Ready != nil {
		c.Ready <- ln.Addr()
	}
	return t.Serve(ln)
}
