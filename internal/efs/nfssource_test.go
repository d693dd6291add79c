package efs

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/efscert"
	"github.com/ec2csi/ec2csi/internal/publications"
	"github.com/ec2csi/ec2csi/internal/store"
	"github.com/ec2csi/ec2csi/internal/tunnel"
)

// The machine has no kernel NFS client, so these tests take the NFS mount
// from a fake Mounter and check it exactly, while everything in front of
// it is real: the Node service, a tunnel Manager in this process, and a Go
// TLS server standing in for the mount target that reads the client
// certificate.

const (
	nfsFS     = "fs-12345678"
	nfsAP     = "fsap-0123456789abcdef0"
	nfsRegion = "us-east-1"
)

// fakeMounter records mounts instead of making them.
type fakeMounter struct {
	mu     sync.Mutex
	mounts map[string]Mount
}

func (f *fakeMounter) Mount(source, target, fstype string, options []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mounts[target] = Mount{Source: source, FSType: fstype, Options: slices.Clone(options)}
	return nil
}

func (f *fakeMounter) Unmount(target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mounts, target)
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (f *fakeMounter) IsMountPoint(target string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.mounts[target]
	return ok, nil
}

func (f *fakeMounter) get(target string) Mount {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mounts[target]
}

// mountTargetServer is a TLS server for *.efs.us-east-1.amazonaws.com that
// greets each connection with the file system and access point of its
// client certificate.
type mountTargetServer struct {
	ln     net.Listener
	caFile string
	wg     sync.WaitGroup
}

func startMountTargetServer(t *testing.T) *mountTargetServer {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	name := "*.efs." + nfsRegion + ".amazonaws.com"
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
		ClientAuth:   tls.RequireAnyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &mountTargetServer{ln: ln, caFile: caFile}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				tc := c.(*tls.Conn)
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() != nil {
					return
				}
				st := tc.ConnectionState()
				leaf := st.PeerCertificates[0]
				var fs, ap string
				for _, e := range leaf.Extensions {
					switch {
					case e.Id.Equal(efscert.OIDFileSystem):
						asn1.UnmarshalWithParams(e.Value, &fs, "utf8")
					case e.Id.Equal(efscert.OIDAccessPoint):
						asn1.UnmarshalWithParams(e.Value, &ap, "utf8")
					}
				}
				tc.Write([]byte("hello " + st.ServerName + " " + fs + " " + ap + "\n"))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *mountTargetServer) port() string {
	_, p, _ := net.SplitHostPort(s.ln.Addr().String())
	return p
}

// greeting connects to a tunnel's local port and returns the server's line.
func greeting(t *testing.T, port int) string {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read through the tunnel on %d: %v", port, err)
	}
	return strings.TrimSpace(line)
}

type nfsEnv struct {
	node    *Node
	src     *NFSSource
	mounter *fakeMounter
	mgr     *tunnel.Manager
	dir     string
}

func newNFSEnv(t *testing.T, def bool) *nfsEnv {
	t.Helper()
	srv := startMountTargetServer(t)
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048) // any RSA key does; 3072 is slow to make
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := tunnel.NewManager(tunnel.ManagerConfig{StateDir: filepath.Join(dir, "tunnel"), PortMin: 20700, PortMax: 20799, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close() })
	if err := mgr.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	src, err := NewNFSSource(NFSSourceOptions{Tunnels: mgr, Region: nfsRegion, Zone: "us-east-1a", EncryptInTransitDefault: def, CAFile: srv.caFile})
	if err != nil {
		t.Fatal(err)
	}
	src.targetPort = srv.port()
	src.lookupHost = func(_ context.Context, host string) ([]string, error) {
		if strings.HasPrefix(host, nfsFS+".") {
			return []string{"10.0.0.1"}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	db, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMounter{mounts: map[string]Mount{}}
	return &nfsEnv{node: NewNode(Options{Name: "efs.test", NodeID: "n1"}, src, m, publications.New(db, "efs")), src: src, mounter: m, mgr: mgr, dir: dir}
}

func (e *nfsEnv) publish(t *testing.T, id, target string, vc map[string]string, flags ...string) (Mount, error) {
	t.Helper()
	_, err := e.node.NodePublishVolume(t.Context(), &csi.NodePublishVolumeRequest{
		VolumeId: id, TargetPath: target, VolumeContext: vc,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{MountFlags: flags}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
		},
	})
	return e.mounter.get(target), err
}

func (e *nfsEnv) unpublish(t *testing.T, id, target string) {
	t.Helper()
	if _, err := e.node.NodeUnpublishVolume(t.Context(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		t.Fatal(err)
	}
}

func (e *nfsEnv) target(name string) string { return filepath.Join(e.dir, "pods", name) }

// portOf reads port=N from a mount's options.
func portOf(t *testing.T, m Mount) int {
	t.Helper()
	for _, o := range m.Options {
		if p, ok := strings.CutPrefix(o, "port="); ok {
			n, _ := strconv.Atoi(p)
			return n
		}
	}
	t.Fatalf("no port option in %v", m.Options)
	return 0
}

func listening(t *testing.T, port int) bool {
	t.Helper()
	ports, err := listeningPorts()
	if err != nil {
		t.Fatal(err)
	}
	return ports[port]
}

var mtIP = map[string]string{"mounttargetip": "127.0.0.1"}

func TestNFSSourceTLSMountSharesAndReleasesTunnel(t *testing.T) {
	e := newNFSEnv(t, true)
	vol := nfsFS + ":/data"
	m1, err := e.publish(t, vol, e.target("a"), mtIP)
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(t, m1)
	want := Mount{Source: "127.0.0.1:/data", FSType: "nfs4", Options: []string{
		"nfsvers=4.1", "rsize=1048576", "wsize=1048576", "hard", "timeo=600", "retrans=2", "noresvport", "port=" + strconv.Itoa(port),
	}}
	if !mountsEqual(m1, want) {
		t.Fatalf("mount\n got %+v\nwant %+v", m1, want)
	}
	if port < 20700 || port > 20799 {
		t.Errorf("port %d outside the range", port)
	}
	// The port leads, over TLS with EFS's client certificate, to the mount
	// target, checked against the file system's DNS name.
	if got, want := greeting(t, port), "hello "+nfsFS+".efs.us-east-1.amazonaws.com "+nfsFS; got != want {
		t.Errorf("through the tunnel: %q, want %q", got, want)
	}

	// A second pod of the same volume shares the tunnel; a repeated
	// publish (a CSI retry) changes nothing.
	m2, err := e.publish(t, vol, e.target("b"), mtIP)
	if err != nil {
		t.Fatal(err)
	}
	if portOf(t, m2) != port {
		t.Errorf("second publish got port %d, want the shared %d", portOf(t, m2), port)
	}
	if _, err := e.publish(t, vol, e.target("b"), mtIP); err != nil {
		t.Fatalf("repeated publish: %v", err)
	}
	if n := len(e.mgr.Tunnels()); n != 1 {
		t.Errorf("%d tunnels, want 1", n)
	}
	if err := e.src.Check(t.Context(), Handle{FileSystemID: nfsFS, SubPath: "/data"}); err != nil {
		t.Errorf("health: %v", err)
	}

	// An access point is another certificate, so another tunnel.
	m3, err := e.publish(t, nfsFS+"::"+nfsAP, e.target("c"), mtIP)
	if err != nil {
		t.Fatal(err)
	}
	apPort := portOf(t, m3)
	if apPort == port || m3.Source != "127.0.0.1:/" {
		t.Errorf("access point mount %+v shares port %d", m3, port)
	}
	if got := greeting(t, apPort); !strings.HasSuffix(got, " "+nfsFS+" "+nfsAP) {
		t.Errorf("access point certificate: %q", got)
	}

	e.unpublish(t, vol, e.target("a"))
	if !listening(t, port) {
		t.Fatal("the tunnel closed while a second target still uses it")
	}
	e.unpublish(t, vol, e.target("b"))
	if listening(t, port) {
		t.Error("the last unpublish left the tunnel listening")
	}
	e.unpublish(t, nfsFS+"::"+nfsAP, e.target("c"))
	if n := len(e.mgr.Tunnels()); n != 0 {
		t.Errorf("%d tunnels left", n)
	}
	// Unpublishing again (a CSI retry) is fine.
	e.unpublish(t, vol, e.target("b"))
}

func mountsEqual(a, b Mount) bool {
	return a.Source == b.Source && a.FSType == b.FSType && slices.Equal(a.Options, b.Options)
}

func TestNFSSourceOptions(t *testing.T) {
	e := newNFSEnv(t, true)
	// User options replace the defaults they set (soft replaces hard),
	// keep their place, and come after otherwise; efs-utils' own options
	// never reach the kernel.
	m, err := e.publish(t, nfsFS, e.target("opts"),
		map[string]string{"mounttargetipmap": `{"us-east-1a":"127.0.0.1","us-east-1b":"10.9.9.9"}`},
		"tls,rsize=65536", "soft", "nosuid", "tlsport=20999", "ocsp", "accesspoint="+nfsAP)
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(t, m)
	want := Mount{Source: "127.0.0.1:/", FSType: "nfs4", Options: []string{
		"nfsvers=4.1", "rsize=65536", "wsize=1048576", "soft", "timeo=600", "retrans=2", "noresvport", "port=" + strconv.Itoa(port), "nosuid",
	}}
	if !mountsEqual(m, want) {
		t.Fatalf("mount\n got %+v\nwant %+v", m, want)
	}
	// accesspoint= in the options is the access point: the certificate
	// says so, and the zone's mount target IP was dialled.
	if got := greeting(t, port); !strings.HasSuffix(got, " "+nfsAP) {
		t.Errorf("through the tunnel: %q", got)
	}
	e.unpublish(t, nfsFS, e.target("opts"))

	// Read-only adds ro.
	m, err = e.publish(t, nfsFS, e.target("ro"), mtIP, "ro", "vers=4.0")
	if err != nil {
		t.Fatal(err)
	}
	if m.Options[0] != "vers=4.0" || !slices.Contains(m.Options, "ro") {
		t.Errorf("read-only with vers: %v", m.Options)
	}
	e.unpublish(t, nfsFS, e.target("ro"))
}

func TestNFSSourceWithoutTLS(t *testing.T) {
	plain := []string{"nfsvers=4.1", "rsize=1048576", "wsize=1048576", "hard", "timeo=600", "retrans=2", "noresvport"}
	for _, tc := range []struct {
		what  string
		def   bool
		vc    map[string]string
		flags []string
		want  Mount
	}{
		{"encryptInTransit=false, DNS name", true, map[string]string{"encryptInTransit": "false"}, nil,
			Mount{Source: nfsFS + ".efs.us-east-1.amazonaws.com:/data", FSType: "nfs4", Options: plain}},
		{"notls, mount target IP", true, map[string]string{"mounttargetip": "10.1.2.3"}, []string{"notls"},
			Mount{Source: "10.1.2.3:/data", FSType: "nfs4", Options: plain}},
		{"node default off, IPv6 mount target, user port", false, map[string]string{"mounttargetip": "fd00::5"}, []string{"port=2050"},
			Mount{Source: "[fd00::5]:/data", FSType: "nfs4", Options: append(slices.Clone(plain), "port=2050")}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			e := newNFSEnv(t, tc.def)
			m, err := e.publish(t, nfsFS+":/data", e.target("p"), tc.vc, tc.flags...)
			if err != nil {
				t.Fatal(err)
			}
			if !mountsEqual(m, tc.want) {
				t.Errorf("mount\n got %+v\nwant %+v", m, tc.want)
			}
			if n := len(e.mgr.Tunnels()); n != 0 {
				t.Errorf("%d tunnels for a mount without TLS", n)
			}
			e.unpublish(t, nfsFS+":/data", e.target("p"))
		})
	}
	// With the node's default off, tls turns it on.
	e := newNFSEnv(t, false)
	m, err := e.publish(t, nfsFS, e.target("tls"), map[string]string{"encryptInTransit": "false", "mounttargetip": "127.0.0.1"}, "tls")
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != "127.0.0.1:/" || !strings.HasPrefix(m.Options[len(m.Options)-1], "port=") {
		t.Errorf("tls option: %+v", m)
	}
	e.unpublish(t, nfsFS, e.target("tls"))
}

func TestNFSSourceRefusals(t *testing.T) {
	e := newNFSEnv(t, true)
	for _, tc := range []struct {
		what     string
		id       string
		vc       map[string]string
		flags    []string
		code     codes.Code
		contains string
	}{
		{"access point without TLS", nfsFS + "::" + nfsAP, map[string]string{"encryptInTransit": "false"}, nil,
			codes.InvalidArgument, "EFS serves access points only over TLS; remove encryptInTransit=false"},
		{"access point with notls", nfsFS, mtIP, []string{"notls", "accesspoint=" + nfsAP},
			codes.InvalidArgument, "EFS serves access points only over TLS; remove mount option notls"},
		{"IAM without TLS", nfsFS, mtIP, []string{"notls", "iam"},
			codes.InvalidArgument, "EFS authorizes with IAM only over TLS"},
		{"port with TLS", nfsFS, mtIP, []string{"port=2049"},
			codes.InvalidArgument, "mount option port=2049: with encryption in transit"},
		{"name that does not resolve", "fs-87654321", nil, nil,
			codes.Unavailable, "its DNS name fs-87654321.efs.us-east-1.amazonaws.com does not resolve from this node"},
		{"zone missing from the map", "fs-87654321", map[string]string{"mounttargetipmap": `{"us-east-1b":"10.0.0.2"}`}, nil,
			codes.Unavailable, "give the mount target's IP in the volume context (mounttargetip, or mounttargetipmap"},
	} {
		_, err := e.publish(t, tc.id, e.target("x"), tc.vc, tc.flags...)
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("%s: %v; want %s containing %q", tc.what, err, tc.code, tc.contains)
		}
	}
	if n := len(e.mgr.Tunnels()); n != 0 {
		t.Errorf("refused publishes left %d tunnels", n)
	}
	if e.mounter.get(e.target("x")).Source != "" {
		t.Error("a refused publish mounted")
	}
}

// TestNFSSourceCheckNoticesDeadTunnel: volume health says so when the
// tunnels stop listening (their daemon died).
func TestNFSSourceCheckNoticesDeadTunnel(t *testing.T) {
	e := newNFSEnv(t, true)
	if _, err := e.publish(t, nfsFS, e.target("h"), mtIP); err != nil {
		t.Fatal(err)
	}
	h := Handle{FileSystemID: nfsFS, SubPath: "/"}
	if err := e.src.Check(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	e.mgr.Close() // keeps its records, as a dying daemon does
	if err := e.src.Check(t.Context(), h); err == nil || !strings.Contains(err.Error(), "is not listening") {
		t.Errorf("health with the tunnels gone: %v", err)
	}
}

func TestMergeNFSOptions(t *testing.T) {
	got := mergeNFSOptions(nfsDefaultOptions, []string{"resvport", "nfsvers=4.0", "noac", "rsize=4096", "rsize=8192", "softerr"})
	want := []string{"nfsvers=4.0", "rsize=8192", "wsize=1048576", "softerr", "timeo=600", "retrans=2", "resvport", "noac"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}
