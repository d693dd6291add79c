package efscert

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

const (
	// DefaultRenewAfter is how old a certificate may get before it is
	// re-signed: efs-utils' watchdog renews hourly, well inside Lifetime.
	DefaultRenewAfter = time.Hour
	// credentialMargin re-signs this long before the signing credentials
	// expire, so a handshake never presents a token that has just lapsed.
	credentialMargin = 5 * time.Minute
	// minRenewInterval is the least time between two renewals.
	minRenewInterval = time.Minute
	// retrieveTimeout bounds one credentials fetch (IMDS, STS, a file).
	retrieveTimeout = 30 * time.Second
)

// Issuer hands out the current certificate for one (file system, access
// point, identity) and re-signs it before it or its credentials expire. Its
// GetClientCertificate method plugs into tls.Config.
type Issuer struct {
	key        *rsa.PrivateKey
	creds      aws.CredentialsProvider
	base       Request
	renewAfter time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate
	renewAt  time.Time // when to start re-signing in the background
	expireAt time.Time // when the current one must no longer be used
	renewing bool
}

// IssuerConfig configures an Issuer.
type IssuerConfig struct {
	// Key is the node key.
	Key *rsa.PrivateKey
	// Request is the certificate template; its Credentials and Now are
	// ignored.
	Request Request
	// Credentials, when set, turn on IAM authorization. A provider that is
	// not already an *aws.CredentialsCache is wrapped in one.
	Credentials aws.CredentialsProvider
	// RenewAfter defaults to DefaultRenewAfter.
	RenewAfter time.Duration
	// Now is for tests; nil means time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// NewIssuer returns an Issuer; it signs nothing until first asked.
func NewIssuer(c IssuerConfig) (*Issuer, error) {
	if c.Key == nil {
		return nil, errors.New("efs certificate issuer: no key")
	}
	if c.Request.FileSystemID == "" {
		return nil, errors.New("efs certificate issuer: no file system ID")
	}
	creds := c.Credentials
	if creds != nil {
		if _, ok := creds.(*aws.CredentialsCache); !ok {
			creds = aws.NewCredentialsCache(creds)
		}
		if c.Request.Region == "" {
			return nil, errors.New("efs certificate issuer: IAM authorization needs a region")
		}
	}
	i := &Issuer{
		key:        c.Key,
		creds:      creds,
		base:       c.Request,
		renewAfter: c.RenewAfter,
		now:        c.Now,
		log:        c.Logger,
	}
	if i.renewAfter <= 0 {
		i.renewAfter = DefaultRenewAfter
	}
	if i.now == nil {
		i.now = time.Now
	}
	if i.log == nil {
		i.log = slog.Default()
	}
	i.base.Credentials = nil
	i.base.Now = time.Time{}
	return i, nil
}

// Certificate returns a certificate that is valid now, signing a new one
// when there is none or the current one is past use. One that is merely due
// for renewal is returned at once while a new one is signed in the
// background, so a handshake never waits for a credentials fetch it does not
// need.
func (i *Issuer) Certificate(ctx context.Context) (*tls.Certificate, error) {
	now := i.now()
	i.mu.Lock()
	cert := i.cert
	if cert != nil && now.Before(i.expireAt) {
		if !now.Before(i.renewAt) && !i.renewing {
			i.renewing = true
			go i.renewInBackground()
		}
		i.mu.Unlock()
		return cert, nil
	}
	i.mu.Unlock()
	return i.Renew(ctx)
}

// GetClientCertificate implements tls.Config.GetClientCertificate.
func (i *Issuer) GetClientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	ctx := context.Background()
	if cri != nil && cri.Context() != nil {
		ctx = cri.Context()
	}
	return i.Certificate(ctx)
}

// Renew signs a new certificate now and makes it current.
func (i *Issuer) Renew(ctx context.Context) (*tls.Certificate, error) {
	req := i.base
	req.Now = i.now()
	var credsExpire time.Time
	if i.creds != nil {
		rctx, cancel := context.WithTimeout(ctx, retrieveTimeout)
		c, err := i.creds.Retrieve(rctx)
		if err == nil && c.CanExpire && c.Expires.Sub(req.Now) < 2*credentialMargin {
			// The cache hands back what it holds until it has expired;
			// signing with credentials this close to expiry would need
			// renewing again at once, so make it fetch new ones.
			if cc, ok := i.creds.(*aws.CredentialsCache); ok {
				cc.Invalidate()
				c, err = i.creds.Retrieve(rctx)
			}
		}
		cancel()
		if err != nil {
			return nil, fmt.Errorf("efs certificate for %s: retrieve AWS credentials: %w", req.FileSystemID, err)
		}
		req.Credentials = &c
		if c.CanExpire {
			credsExpire = c.Expires
		}
	}
	cert, err := Create(i.key, req)
	if err != nil {
		return nil, err
	}
	renewAt := req.Now.Add(i.renewAfter)
	expireAt := cert.Leaf.NotAfter.Add(-credentialMargin)
	if !credsExpire.IsZero() {
		if t := credsExpire.Add(-2 * credentialMargin); t.Before(renewAt) {
			renewAt = t
		}
		if t := credsExpire.Add(-credentialMargin); t.Before(expireAt) {
			expireAt = t
		}
	}
	if floor := req.Now.Add(minRenewInterval); renewAt.Before(floor) {
		// Short-lived credentials must not turn every handshake into a
		// signing.
		renewAt = floor
	}
	i.mu.Lock()
	i.cert, i.renewAt, i.expireAt = cert, renewAt, expireAt
	i.mu.Unlock()
	i.log.Debug("signed EFS client certificate",
		"fileSystem", req.FileSystemID, "accessPoint", req.AccessPointID,
		"iam", req.Credentials != nil, "notAfter", cert.Leaf.NotAfter, "renewAt", renewAt)
	return cert, nil
}

func (i *Issuer) renewInBackground() {
	defer func() {
		i.mu.Lock()
		i.renewing = false
		i.mu.Unlock()
	}()
	if _, err := i.Renew(context.Background()); err != nil {
		// The current certificate is still usable; the next handshake
		// tries again.
		i.log.Warn("renew EFS client certificate", "fileSystem", i.base.FileSystemID, "err", err)
	}
}
