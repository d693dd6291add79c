package efscert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // the protocol's hash
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// testKey is made once: 3072-bit generation is slow.
var (
	testKeyOnce sync.Once
	testKey     *rsa.PrivateKey
	testKeyDir  string
)

func nodeKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	testKeyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "efscert-key-")
		if err != nil {
			t.Fatal(err)
		}
		testKeyDir = dir
		testKey, err = LoadOrCreateKey(dir)
		if err != nil {
			t.Fatal(err)
		}
	})
	if testKey == nil {
		t.Fatal("no test key")
	}
	return testKey
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testKeyDir != "" {
		os.RemoveAll(testKeyDir)
	}
	os.Exit(code)
}

// Vectors computed independently with python3 hashlib/hmac from the SigV4
// definition (canonical request, string to sign, derived key) with these
// inputs.
var sigVector = SigningInput{
	PublicKeyHash:   "0123456789abcdef0123456789abcdef01234567",
	FileSystemID:    "fs-12345678",
	Region:          "us-east-1",
	AccessKeyID:     "AKIDEXAMPLE",
	SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	Time:            time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC),
}

const vectorToken = "IQoJb3JpZ2luX2VjEP//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+/=="

func TestSignKnownVectors(t *testing.T) {
	in := sigVector
	if got, want := Sign(in), "e823232eda7eb57481258d36e932cf1c7330e339b681f84686e1f834c0b9016b"; got != want {
		t.Errorf("signature without token = %s, want %s", got, want)
	}
	in.SessionToken = vectorToken
	if got, want := Sign(in), "594fe8d0f187b5f50617a486f4e6014a50b1a41fafb087b8edc6fdb3a1a4f972"; got != want {
		t.Errorf("signature with token = %s, want %s", got, want)
	}
	wantQuery := "Action=Connect&PublicKeyHash=0123456789abcdef0123456789abcdef01234567" +
		"&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIDEXAMPLE%2F20240229%2Fus-east-1%2Felasticfilesystem%2Faws4_request" +
		"&X-Amz-Date=20240229T235959Z&X-Amz-Expires=86400" +
		"&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEP%2F%2F%2F%2F%2F%2F%2F%2F%2F%2FwEaCXVzLWVhc3QtMSJHMEUCIQ%2B%2F%3D%3D" +
		"&X-Amz-SignedHeaders=host"
	lines := strings.Split(canonicalRequest(in), "\n")
	if len(lines) != 6 {
		t.Fatalf("canonical request has %d lines, want 6: %q", len(lines), lines)
	}
	want := []string{"GET", "/", wantQuery, "host:fs-12345678", "host",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("canonical request line %d = %q, want %q", i, lines[i], want[i])
		}
	}
	// The signing time is converted to UTC whatever zone it comes in.
	in.Time = in.Time.In(time.FixedZone("x", 5*3600))
	if got := Sign(in); got != "594fe8d0f187b5f50617a486f4e6014a50b1a41fafb087b8edc6fdb3a1a4f972" {
		t.Errorf("signature from a zoned time = %s", got)
	}
}

// plainSign is a second, deliberately naive implementation of the same
// definition: byte-by-byte form encoding and explicit HMAC steps.
func plainSign(in SigningInput) string {
	formEncode := func(s string) string {
		var b strings.Builder
		for _, c := range []byte(s) {
			switch {
			case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
				b.WriteByte(c)
			case c == ' ':
				b.WriteByte('+')
			default:
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	ts := in.Time.UTC()
	day := fmt.Sprintf("%04d%02d%02d", ts.Year(), ts.Month(), ts.Day())
	stamp := fmt.Sprintf("%sT%02d%02d%02dZ", day, ts.Hour(), ts.Minute(), ts.Second())
	scope := day + "/" + in.Region + "/elasticfilesystem/aws4_request"
	kv := [][2]string{
		{"Action", "Connect"}, {"PublicKeyHash", in.PublicKeyHash},
		{"X-Amz-Algorithm", "AWS4-HMAC-SHA256"}, {"X-Amz-Credential", in.AccessKeyID + "/" + scope},
		{"X-Amz-Date", stamp}, {"X-Amz-Expires", "86400"}, {"X-Amz-SignedHeaders", "host"},
	}
	if in.SessionToken != "" {
		kv = append(kv, [2]string{"X-Amz-Security-Token", in.SessionToken})
	}
	sort.Slice(kv, func(a, b int) bool { return kv[a][0] < kv[b][0] })
	var parts []string
	for _, p := range kv {
		parts = append(parts, p[0]+"="+formEncode(p[1]))
	}
	sha := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	canon := "GET\n/\n" + strings.Join(parts, "&") + "\nhost:" + in.FileSystemID + "\nhost\n" + sha("")
	sts := "AWS4-HMAC-SHA256\n" + stamp + "\n" + scope + "\n" + sha(canon)
	h := func(k []byte, m string) []byte {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(m))
		return mac.Sum(nil)
	}
	k := h(h(h(h([]byte("AWS4"+in.SecretAccessKey), day), in.Region), "elasticfilesystem"), "aws4_request")
	return hex.EncodeToString(h(k, sts))
}

func TestSignMatchesPlainImplementation(t *testing.T) {
	tokens := []string{"", vectorToken, "with space~and~tilde", "ünïcode/+=&?", strings.Repeat("A/b+", 200)}
	for i, tok := range tokens {
		in := sigVector
		in.SessionToken = tok
		in.Time = in.Time.Add(time.Duration(i) * 37 * time.Hour)
		in.Region = []string{"us-east-1", "eu-west-2", "cn-north-1"}[i%3]
		if got, want := Sign(in), plainSign(in); got != want {
			t.Errorf("token %q: Sign = %s, plain = %s", tok, got, want)
		}
	}
	if plainSign(sigVector) != "e823232eda7eb57481258d36e932cf1c7330e339b681f84686e1f834c0b9016b" {
		t.Error("the plain implementation disagrees with the python-derived vector")
	}
}

func TestPublicKeyHashIsSHA1OfPKCS1(t *testing.T) {
	key := nodeKey(t)
	got, err := PublicKeyHash(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	want := sha1.Sum(x509.MarshalPKCS1PublicKey(&key.PublicKey)) //nolint:gosec
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("hash %x, want %x", got, want)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	keys := make([]*rsa.PrivateKey, 3)
	errs := make([]error, 3)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = LoadOrCreateKey(dir)
		}()
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	// Racing creators must all end up with the one key on disk.
	again, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if !keys[i].Equal(again) {
			t.Errorf("caller %d got a different key from the one on disk", i)
		}
	}
	if again.N.BitLen() != KeyBits {
		t.Errorf("key has %d bits, want %d", again.N.BitLen(), KeyBits)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d files, want only the key", len(ents))
	}
	raw, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if !bytes.HasPrefix(raw, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("key is not PKCS#8 PEM: %.40q", raw)
	}
	// An empty file left by an interrupted writer is replaced.
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, KeyFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(empty); err != nil {
		t.Fatalf("empty key file: %v", err)
	}
}

// extValue returns the DER value of extension id, failing if it is absent,
// critical, or present twice.
func extValue(t *testing.T, c *x509.Certificate, id asn1.ObjectIdentifier) []byte {
	t.Helper()
	var found []byte
	for _, e := range c.Extensions {
		if e.Id.Equal(id) {
			if found != nil {
				t.Fatalf("extension %v twice", id)
			}
			if e.Critical {
				t.Fatalf("extension %v is critical", id)
			}
			found = e.Value
		}
	}
	if found == nil {
		t.Fatalf("extension %v missing", id)
	}
	return found
}

// mustRaw decodes exactly one TLV from der.
func mustRaw(t *testing.T, der []byte) asn1.RawValue {
	t.Helper()
	var rv asn1.RawValue
	rest, err := asn1.Unmarshal(der, &rv)
	if err != nil {
		t.Fatalf("decode %x: %v", der, err)
	}
	if len(rest) != 0 {
		t.Fatalf("%d trailing bytes after %x", len(rest), der)
	}
	return rv
}

func expectUTF8(t *testing.T, rv asn1.RawValue, want, what string) {
	t.Helper()
	if rv.Class != asn1.ClassUniversal || rv.Tag != asn1.TagUTF8String || rv.IsCompound {
		t.Errorf("%s: class %d tag %d compound %v, want universal UTF8String", what, rv.Class, rv.Tag, rv.IsCompound)
	}
	if string(rv.Bytes) != want {
		t.Errorf("%s = %q, want %q", what, rv.Bytes, want)
	}
}

// children splits a constructed value's contents into TLVs.
func children(t *testing.T, rv asn1.RawValue) []asn1.RawValue {
	t.Helper()
	var out []asn1.RawValue
	rest := rv.Bytes
	for len(rest) > 0 {
		var c asn1.RawValue
		var err error
		rest, err = asn1.Unmarshal(rest, &c)
		if err != nil {
			t.Fatalf("decode child: %v", err)
		}
		out = append(out, c)
	}
	return out
}

func TestCreateWithIAMAccessPointAndClientInfo(t *testing.T) {
	key := nodeKey(t)
	now := time.Date(2025, 7, 1, 12, 30, 45, 999, time.UTC)
	creds := aws.Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "secret/key+1", SessionToken: vectorToken}
	cert, err := Create(key, Request{
		FileSystemID:  "fs-0123abcd",
		AccessPointID: "fsap-0123456789abcdef0",
		Credentials:   &creds,
		Region:        "eu-west-1",
		ClientInfo:    &ClientInfo{Source: "k8s", Version: "1.2.3"},
		CommonName:    strings.Repeat("n", 70),
		Now:           now,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := cert.Leaf
	if c.Subject.CommonName != strings.Repeat("n", 64) {
		t.Errorf("CN %q, want 64 n's", c.Subject.CommonName)
	}
	if len(c.Subject.Names) != 1 {
		t.Errorf("subject has %d attributes, want only CN", len(c.Subject.Names))
	}
	if !bytes.Equal(c.RawIssuer, c.RawSubject) {
		t.Error("issuer differs from subject")
	}
	// CheckSignatureFrom would refuse a parent without CA constraints, so
	// check the signature itself.
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		t.Errorf("not self-signed by the node key: %v", err)
	}
	if c.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("signature algorithm %v", c.SignatureAlgorithm)
	}
	if c.Version != 3 {
		t.Errorf("version %d", c.Version)
	}
	sec := now.Truncate(time.Second)
	if !c.NotBefore.Equal(sec.Add(-15*time.Minute)) || !c.NotAfter.Equal(sec.Add(3*time.Hour)) {
		t.Errorf("validity %v..%v", c.NotBefore, c.NotAfter)
	}
	if c.SerialNumber.Sign() <= 0 {
		t.Error("serial not positive")
	}
	pkh := sha1.Sum(x509.MarshalPKCS1PublicKey(&key.PublicKey)) //nolint:gosec
	if !bytes.Equal(c.SubjectKeyId, pkh[:]) {
		t.Errorf("subject key ID %x, want %x", c.SubjectKeyId, pkh)
	}
	if c.IsCA || c.BasicConstraintsValid || c.KeyUsage != 0 || len(c.ExtKeyUsage) != 0 || len(c.AuthorityKeyId) != 0 {
		t.Error("unexpected standard extensions beyond the subject key identifier")
	}

	// Extension order: SKI, 7.1, 7.2, 7.3, 7.4.
	var order []string
	for _, e := range c.Extensions {
		order = append(order, e.Id.String())
	}
	wantOrder := "2.5.29.14 1.3.6.1.4.1.4843.7.1 1.3.6.1.4.1.4843.7.2 1.3.6.1.4.1.4843.7.3 1.3.6.1.4.1.4843.7.4"
	if strings.Join(order, " ") != wantOrder {
		t.Errorf("extensions %v, want %s", order, wantOrder)
	}

	expectUTF8(t, mustRaw(t, extValue(t, c, OIDAccessPoint)), "fsap-0123456789abcdef0", "access point")
	expectUTF8(t, mustRaw(t, extValue(t, c, OIDFileSystem)), "fs-0123abcd", "file system")

	info := mustRaw(t, extValue(t, c, OIDClientInfo))
	if info.Tag != asn1.TagSequence || !info.IsCompound {
		t.Fatalf("client info tag %d", info.Tag)
	}
	ic := children(t, info)
	if len(ic) != 2 {
		t.Fatalf("client info has %d fields", len(ic))
	}
	expectUTF8(t, ic[0], "k8s", "client info source")
	expectUTF8(t, ic[1], "1.2.3", "client info version")

	auth := mustRaw(t, extValue(t, c, OIDClientAuth))
	if auth.Class != asn1.ClassUniversal || auth.Tag != asn1.TagSequence || !auth.IsCompound {
		t.Fatalf("client auth is class %d tag %d", auth.Class, auth.Tag)
	}
	f := children(t, auth)
	if len(f) != 4 {
		t.Fatalf("client auth has %d fields, want 4", len(f))
	}
	expectUTF8(t, f[0], "ASIAEXAMPLE", "access key ID")
	if f[1].Tag != asn1.TagOctetString || f[1].Class != asn1.ClassUniversal {
		t.Errorf("signature tag %d", f[1].Tag)
	}
	wantSig := plainSign(SigningInput{
		PublicKeyHash: hex.EncodeToString(pkh[:]), FileSystemID: "fs-0123abcd", Region: "eu-west-1",
		AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "secret/key+1", SessionToken: vectorToken, Time: sec,
	})
	if string(f[1].Bytes) != wantSig {
		t.Errorf("signature octets %q, want the hex text %q", f[1].Bytes, wantSig)
	}
	if f[2].Tag != asn1.TagUTCTime || f[2].Class != asn1.ClassUniversal {
		t.Errorf("signing time tag %d, want UTCTime", f[2].Tag)
	}
	if string(f[2].Bytes) != "250701123045Z" {
		t.Errorf("signing time %q", f[2].Bytes)
	}
	if f[3].Class != asn1.ClassContextSpecific || f[3].Tag != 0 || !f[3].IsCompound {
		t.Errorf("session token wrapper class %d tag %d compound %v, want [0] EXPLICIT", f[3].Class, f[3].Tag, f[3].IsCompound)
	}
	expectUTF8(t, mustRaw(t, f[3].Bytes), vectorToken, "session token")

	// openssl, where present, is a second parser of the same bytes.
	if _, err := exec.LookPath("openssl"); err == nil {
		p := filepath.Join(t.TempDir(), "c.der")
		if err := os.WriteFile(p, cert.Certificate[0], 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("openssl", "x509", "-inform", "DER", "-in", p, "-noout", "-text").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl x509: %v\n%s", err, out)
		}
		for _, want := range []string{"Public-Key: (3072 bit)", "1.3.6.1.4.1.4843.7.2:", "Subject Key Identifier"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("openssl output lacks %q", want)
			}
		}
	}
}

func TestCreateMinimal(t *testing.T) {
	key := nodeKey(t)
	cert, err := Create(key, Request{FileSystemID: "fs-1"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range cert.Leaf.Extensions {
		ids = append(ids, e.Id.String())
	}
	if strings.Join(ids, " ") != "2.5.29.14 1.3.6.1.4.1.4843.7.3" {
		t.Errorf("extensions %v, want only SKI and the file system", ids)
	}
	host, _ := os.Hostname()
	if len(host) > 64 {
		host = host[:64]
	}
	if cert.Leaf.Subject.CommonName != host {
		t.Errorf("CN %q, want host name %q", cert.Leaf.Subject.CommonName, host)
	}
	// A session-less credential leaves the token field out entirely.
	cert, err = Create(key, Request{FileSystemID: "fs-1", Region: "us-west-2",
		Credentials: &aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	if f := children(t, mustRaw(t, extValue(t, cert.Leaf, OIDClientAuth))); len(f) != 3 {
		t.Errorf("client auth without token has %d fields, want 3", len(f))
	}
	if _, err := Create(key, Request{FileSystemID: "fs-1", Credentials: &aws.Credentials{AccessKeyID: "a", SecretAccessKey: "b"}}); err == nil {
		t.Error("IAM without a region was accepted")
	}
	if _, err := Create(key, Request{}); err == nil {
		t.Error("no file system ID was accepted")
	}
}

type countingProvider struct {
	n       atomic.Int32
	expires func() time.Time
}

func (p *countingProvider) Retrieve(context.Context) (aws.Credentials, error) {
	n := p.n.Add(1)
	return aws.Credentials{
		AccessKeyID: fmt.Sprintf("AKID%d", n), SecretAccessKey: "s", SessionToken: "t",
		CanExpire: true, Expires: p.expires(),
	}, nil
}

func TestIssuerRenewsBeforeCredentialsExpire(t *testing.T) {
	key := nodeKey(t)
	var clock atomic.Int64
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	// Each credential lives 30 minutes from when it is fetched.
	prov := &countingProvider{expires: func() time.Time { return now().Add(30 * time.Minute) }}
	is, err := NewIssuer(IssuerConfig{
		Key: key, Request: Request{FileSystemID: "fs-1", Region: "us-east-1", CommonName: "node"},
		Credentials: prov, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c1, err := is.Certificate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := is.Certificate(ctx); c2 != c1 {
		t.Error("a fresh certificate was re-signed")
	}
	// 21 minutes on: inside the renewal window (expiry - 10 min) but still
	// usable: the old one is returned and a new one is signed behind it.
	clock.Store(start.Add(21 * time.Minute).UnixNano())
	if c3, _ := is.Certificate(ctx); c3 != c1 {
		t.Error("a still-valid certificate was not returned at once")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		is.mu.Lock()
		cur, renewing := is.cert, is.renewing
		is.mu.Unlock()
		if cur != c1 && !renewing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("background renewal never happened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c4, _ := is.Certificate(ctx)
	if c4 == c1 {
		t.Fatal("not renewed")
	}
	// 60 minutes after the renewal the credentials behind c4 are expired:
	// the next call must sign synchronously instead of returning c4.
	clock.Store(start.Add(21*time.Minute + 60*time.Minute).UnixNano())
	c5, err := is.Certificate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c5 == c4 {
		t.Fatal("a certificate signed with expired credentials was returned")
	}
	f := children(t, mustRaw(t, extValue(t, c5.Leaf, OIDClientAuth)))
	expectUTF8(t, f[0], "AKID3", "access key of the third signing")
}
