package efscert

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"sort"
	"strings"
	"time"
)

// ServiceName is the SigV4 service EFS signatures are scoped to.
const ServiceName = "elasticfilesystem"

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	// sigExpires is what the signed query claims, in seconds; the
	// certificate's own lifetime is what really bounds reuse.
	sigExpires = "86400"
)

// SigningInput is everything the EFS client-auth signature covers.
type SigningInput struct {
	// PublicKeyHash is the lower-case hex SHA-1 from PublicKeyHash: it binds
	// the signature to one key pair so it cannot be replayed with another.
	PublicKeyHash   string
	FileSystemID    string
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Time            time.Time
}

// Sign returns the lower-case hex SigV4 signature over in's pseudo request:
// "GET /?Action=Connect&PublicKeyHash=…" to host <file system ID>.
func Sign(in SigningInput) string {
	t := in.Time.UTC()
	key := signingKey(in.SecretAccessKey, t.Format("20060102"), in.Region)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(stringToSign(in)))
	return hex.EncodeToString(mac.Sum(nil))
}

func credentialScope(t time.Time, region string) string {
	return t.UTC().Format("20060102") + "/" + region + "/" + ServiceName + "/aws4_request"
}

// canonicalRequest is the SigV4 canonical request for an EFS connect. Its
// header block is "host:<fs id>" followed directly by the signed header list
// (no blank line), as EFS verifies it.
func canonicalRequest(in SigningInput) string {
	t := in.Time.UTC()
	params := map[string]string{
		"Action":              "Connect",
		"PublicKeyHash":       in.PublicKeyHash,
		"X-Amz-Algorithm":     sigAlgorithm,
		"X-Amz-Credential":    in.AccessKeyID + "/" + credentialScope(t, in.Region),
		"X-Amz-Date":          t.Format("20060102T150405Z"),
		"X-Amz-Expires":       sigExpires,
		"X-Amz-SignedHeaders": "host",
	}
	if in.SessionToken != "" {
		params["X-Amz-Security-Token"] = in.SessionToken
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	var q strings.Builder
	for i, k := range names {
		if i > 0 {
			q.WriteByte('&')
		}
		// QueryEscape leaves only A-Z a-z 0-9 - _ . ~ and writes a space as
		// '+': the form-encoding EFS expects, '/' included.
		q.WriteString(k + "=" + url.QueryEscape(params[k]))
	}
	emptyHash := sha256.Sum256(nil)
	return "GET\n/\n" + q.String() + "\nhost:" + in.FileSystemID + "\nhost\n" + hex.EncodeToString(emptyHash[:])
}

func stringToSign(in SigningInput) string {
	t := in.Time.UTC()
	h := sha256.Sum256([]byte(canonicalRequest(in)))
	return sigAlgorithm + "\n" + t.Format("20060102T150405Z") + "\n" + credentialScope(t, in.Region) + "\n" + hex.EncodeToString(h[:])
}

func signingKey(secret, date, region string) []byte {
	k := []byte("AWS4" + secret)
	for _, part := range []string{date, region, ServiceName, "aws4_request"} {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(part))
		k = mac.Sum(nil)
	}
	return k
}
