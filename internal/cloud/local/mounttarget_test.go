package local

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/efscert"
)

// greet connects to the mount target as a tunnel would, with a client
// certificate for fsID and apID and the given server name, and returns the
// greeting line.
func greet(t *testing.T, m *MountTarget, key *rsa.PrivateKey, serverName, fsID, apID string) string {
	t.Helper()
	cert, err := efscert.Create(key, efscert.Request{FileSystemID: fsID, AccessPointID: apID})
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(m.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c, err := tls.Dial("tcp", m.Addr(), &tls.Config{ServerName: serverName, RootCAs: roots, Certificates: []tls.Certificate{*cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

func TestMountTargetChecksClientCertificate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const fsA, fsB = "fs-0000000a", "fs-0000000b"
	for _, id := range []string{fsA, fsB} {
		if _, err := b.CreateFileSystem(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	apA, err := b.CreateAccessPoint(ctx, cloud.CreateAccessPointInput{FileSystemID: fsA, ClientToken: "a", RootDirectory: "/a"})
	if err != nil {
		t.Fatal(err)
	}
	apB, err := b.CreateAccessPoint(ctx, cloud.CreateAccessPointInput{FileSystemID: fsB, ClientToken: "b", RootDirectory: "/b"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.StartMountTarget(MountTargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if b.Region() != "local-1" {
		t.Errorf("region of %s = %s", b.Zone(), b.Region())
	}
	// 2048 bits: any RSA key works, and 3072 takes long to make here.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	name := func(fs string) string { return fs + ".efs.local-1.amazonaws.com" }
	for _, tc := range []struct {
		what, serverName, fs, ap, want string
	}{
		{"file system", name(fsA), fsA, "", "EC2CSI-LOCAL-EFS OK " + fsA},
		{"its access point", name(fsA), fsA, apA.ID, "EC2CSI-LOCAL-EFS OK " + fsA + " " + apA.ID},
		{"another file system's access point", name(fsA), fsA, apB.ID,
			"EC2CSI-LOCAL-EFS DENIED access point " + apB.ID + " belongs to file system " + fsB + ", not " + fsA},
		{"unknown access point", name(fsA), fsA, "fsap-0123456789abcdef0", "EC2CSI-LOCAL-EFS DENIED access point fsap-0123456789abcdef0 does not exist"},
		{"unknown file system", name("fs-0000000c"), "fs-0000000c", "", "EC2CSI-LOCAL-EFS DENIED file system fs-0000000c does not exist"},
		{"certificate for another name", name(fsB), fsA, "", "EC2CSI-LOCAL-EFS DENIED the client certificate is for file system " + fsA + `, but the connection is for "` + name(fsB) + `"`},
	} {
		if got := greet(t, m, key, tc.serverName, tc.fs, tc.ap); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.what, got, tc.want)
		}
	}

	// The certificate covers every file system's name of the region only.
	caPEM, _ := os.ReadFile(m.CAFile())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	if c, err := tls.Dial("tcp", m.Addr(), &tls.Config{ServerName: fsA + ".efs.us-east-1.amazonaws.com", RootCAs: roots}); err == nil || !strings.Contains(err.Error(), "certificate is valid for *.efs.local-1.amazonaws.com") {
		if c != nil {
			c.Close()
		}
		t.Errorf("a name of another region: %v", err)
	}

	// Keys are private; the port and the CA survive a restart.
	for _, f := range []string{caKeyFile, serverKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, mountTargetDir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v", f, err, fi.Mode())
		}
	}
	addr := m.Addr()
	ca1, _ := os.ReadFile(m.CAFile())
	m.Close()
	m2, err := b.StartMountTarget(MountTargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	ca2, _ := os.ReadFile(m2.CAFile())
	if m2.Addr() != addr || string(ca1) != string(ca2) {
		t.Errorf("after a restart: %s (was %s), CA changed %t", m2.Addr(), addr, string(ca1) != string(ca2))
	}
	if got := greet(t, m2, key, name(fsA), fsA, apA.ID); !strings.HasPrefix(got, "EC2CSI-LOCAL-EFS OK") {
		t.Errorf("after a restart: %s", got)
	}
}

// TestProbe reads the greeting as the node does through a tunnel, here
// from plain TCP servers saying each thing.
func TestProbe(t *testing.T) {
	serve := func(say string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte(say))
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	ctx := context.Background()
	if err := Probe(ctx, serve("EC2CSI-LOCAL-EFS OK fs-12345678\n")); err != nil {
		t.Errorf("OK: %v", err)
	}
	err := Probe(ctx, serve("EC2CSI-LOCAL-EFS DENIED access point fsap-1 does not exist\n"))
	if !errors.Is(err, cloud.ErrUnauthorized) || !strings.Contains(err.Error(), "refused the client certificate: access point fsap-1 does not exist") {
		t.Errorf("denied: %v", err)
	}
	if err := Probe(ctx, serve("")); !errors.Is(err, cloud.ErrUnavailable) || !strings.Contains(err.Error(), "TLS handshake") {
		t.Errorf("closed: %v", err)
	}
}
