// Package efscert makes the client certificate that Amazon EFS expects on a
// TLS mount: a short-lived self-signed certificate whose private extensions
// name the file system, the access point and, for IAM authorization, carry a
// SigV4 signature that ties the node's key pair to AWS credentials.
//
// Everything is done in process with the standard library; no openssl is run.
// The encoding follows what amazon-efs-utils puts in its certificates, so an
// EFS mount target treats ours exactly like efs-utils' own.
package efscert

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // EFS defines the public key hash as SHA-1.
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// The private extensions EFS reads from the client certificate, under
// Amazon's enterprise arc 1.3.6.1.4.1.4843.
var (
	// OIDAccessPoint carries the access point ID as a UTF8String.
	OIDAccessPoint = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 4843, 7, 1}
	// OIDClientAuth carries the SigV4 client authentication SEQUENCE.
	OIDClientAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 4843, 7, 2}
	// OIDFileSystem carries the file system ID as a UTF8String.
	OIDFileSystem = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 4843, 7, 3}
	// OIDClientInfo carries a SEQUENCE of UTF8Strings describing the client.
	OIDClientInfo = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 4843, 7, 4}
)

const (
	// NotBeforeSkew backdates a certificate so a mount target whose clock is
	// a little behind ours still accepts it.
	NotBeforeSkew = 15 * time.Minute
	// Lifetime is how long after signing a certificate stays valid.
	Lifetime = 3 * time.Hour
	// maxCommonName is the X.520 upper bound on a common name.
	maxCommonName = 64
)

// ClientInfo describes the mounting software to EFS (extension 7.4).
type ClientInfo struct {
	// Source names the kind of client, e.g. "k8s".
	Source string
	// Version is the client software's version.
	Version string
}

// Request is what one certificate says.
type Request struct {
	// FileSystemID is the EFS file system, e.g. fs-12345678. Required.
	FileSystemID string
	// AccessPointID is the access point, e.g. fsap-0123…; empty for none.
	AccessPointID string
	// Credentials, when non-nil, turn on IAM authorization: the certificate
	// then carries a SigV4 signature made with them.
	Credentials *aws.Credentials
	// Region scopes the SigV4 signature. Required with Credentials.
	Region string
	// ClientInfo is optional.
	ClientInfo *ClientInfo
	// CommonName is the subject CN; empty means the host name. It is cut to
	// 64 characters.
	CommonName string
	// Now is the signing time; zero means time.Now().
	Now time.Time
}

// clientAuth is extension 7.2. The signature is the lower-case hex text of
// the SigV4 HMAC, stored as the bytes of that text (not the raw MAC), and the
// session token sits under an explicit context tag [0].
type clientAuth struct {
	AccessKeyID  string    `asn1:"utf8"`
	Signature    []byte    // OCTET STRING
	SigningTime  time.Time `asn1:"utc"`
	SessionToken string    `asn1:"optional,explicit,tag:0,utf8"`
}

// clientInfo is extension 7.4.
type clientInfo struct {
	Source  string `asn1:"utf8"`
	Version string `asn1:"utf8"`
}

// Create signs a certificate for r with key and returns it ready for a TLS
// client, with Leaf set.
func Create(key *rsa.PrivateKey, r Request) (*tls.Certificate, error) {
	if key == nil {
		return nil, errors.New("efs certificate: no private key")
	}
	if r.FileSystemID == "" {
		return nil, errors.New("efs certificate: no file system ID")
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	// UTCTime has whole seconds; truncating keeps the signed time and the
	// encoded time identical.
	now = now.UTC().Truncate(time.Second)

	cn := r.CommonName
	if cn == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("efs certificate: host name for the common name: %w", err)
		}
		cn = host
	}
	if len(cn) > maxCommonName {
		cn = cn[:maxCommonName]
	}

	pubHash, err := PublicKeyHash(&key.PublicKey)
	if err != nil {
		return nil, err
	}

	var exts []pkix.Extension
	if r.AccessPointID != "" {
		v, err := asn1.MarshalWithParams(r.AccessPointID, "utf8")
		if err != nil {
			return nil, fmt.Errorf("efs certificate: encode access point: %w", err)
		}
		exts = append(exts, pkix.Extension{Id: OIDAccessPoint, Value: v})
	}
	if r.Credentials != nil {
		if r.Region == "" {
			return nil, errors.New("efs certificate: IAM authorization needs a region")
		}
		c := r.Credentials
		if c.AccessKeyID == "" || c.SecretAccessKey == "" {
			return nil, errors.New("efs certificate: IAM authorization needs an access key")
		}
		sig := Sign(SigningInput{
			PublicKeyHash:   hex.EncodeToString(pubHash),
			FileSystemID:    r.FileSystemID,
			Region:          r.Region,
			AccessKeyID:     c.AccessKeyID,
			SecretAccessKey: c.SecretAccessKey,
			SessionToken:    c.SessionToken,
			Time:            now,
		})
		v, err := asn1.Marshal(clientAuth{
			AccessKeyID:  c.AccessKeyID,
			Signature:    []byte(sig),
			SigningTime:  now,
			SessionToken: c.SessionToken,
		})
		if err != nil {
			return nil, fmt.Errorf("efs certificate: encode client authentication: %w", err)
		}
		exts = append(exts, pkix.Extension{Id: OIDClientAuth, Value: v})
	}
	fsv, err := asn1.MarshalWithParams(r.FileSystemID, "utf8")
	if err != nil {
		return nil, fmt.Errorf("efs certificate: encode file system ID: %w", err)
	}
	exts = append(exts, pkix.Extension{Id: OIDFileSystem, Value: fsv})
	if r.ClientInfo != nil {
		v, err := asn1.Marshal(clientInfo{Source: r.ClientInfo.Source, Version: r.ClientInfo.Version})
		if err != nil {
			return nil, fmt.Errorf("efs certificate: encode client info: %w", err)
		}
		exts = append(exts, pkix.Extension{Id: OIDClientInfo, Value: v})
	}

	// RFC 5280 asks for a positive serial of at most 20 octets; a random
	// one keeps certificates from one key distinguishable.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("efs certificate: serial number: %w", err)
	}
	serial.Add(serial, big.NewInt(1))

	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		Subject:            pkix.Name{CommonName: cn},
		NotBefore:          now.Add(-NotBeforeSkew),
		NotAfter:           now.Add(Lifetime),
		SignatureAlgorithm: x509.SHA256WithRSA,
		// The same SHA-1 that the signature covers, which is also RFC 5280's
		// method (1) key identifier: what openssl's "hash" writes.
		SubjectKeyId:    pubHash,
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("efs certificate: sign: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("efs certificate: parse what was signed: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// PublicKeyHash is the SHA-1 of the subjectPublicKey BIT STRING's contents
// (without its unused-bits octet) in the key's SubjectPublicKeyInfo. For RSA
// that is the PKCS#1 RSAPublicKey DER.
func PublicKeyHash(pub *rsa.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("efs certificate: encode public key: %w", err)
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("efs certificate: parse public key: %w", err)
	}
	sum := sha1.Sum(info.PublicKey.Bytes) //nolint:gosec // fixed by the EFS protocol
	return sum[:], nil
}
