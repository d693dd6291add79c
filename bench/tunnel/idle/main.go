// Command idle measures what an idle tunnel costs a tunnel daemon: it opens
// tunnels through the daemon's socket, holds one established connection on
// each, and reports the daemon's resident memory before and after.
// bench/tunnel.sh runs it.
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ec2csi/ec2csi/internal/tunnel"
)

const serverName = "fs-12345678.efs.us-east-1.amazonaws.com"

func main() {
	socket := flag.String("socket", "", "tunnel daemon socket")
	pid := flag.Int("pid", 0, "tunnel daemon process ID")
	n := flag.Int("n", 100, "idle tunnels to open")
	dir := flag.String("dir", "", "scratch directory")
	settle := flag.Duration("settle", 3*time.Second, "wait before reading memory")
	flag.Parse()
	if err := run(*socket, *pid, *n, *dir, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
}

func run(socket string, pid, n int, dir string, settle time.Duration) error {
	caFile, conf, err := pki(dir)
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()

	ctx := context.Background()
	cl := tunnel.NewClient(socket)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cl.Restore(rctx); err != nil {
		return err
	}
	empty, err := rssKiB(pid)
	if err != nil {
		return err
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	open := func(i int) error {
		spec := tunnel.Spec{
			FileSystemID: fmt.Sprintf("fs-%08x", i), Target: ln.Addr().String(),
			ServerName: serverName, CAFile: caFile,
		}
		port, err := cl.Acquire(ctx, spec, fmt.Sprintf("/bench/idle/%d", i))
		if err != nil {
			return err
		}
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return err
		}
		conns = append(conns, c)
		// Some traffic first, so the connection's buffers have been used
		// and the figure is that of a connection gone idle, not a new one.
		msg := make([]byte, 64<<10)
		go c.Write(msg)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(c, msg); err != nil {
			return fmt.Errorf("echo through tunnel %d: %w", i, err)
		}
		return nil
	}
	// One tunnel first: the node key, the CA pool and code paths are paid
	// once per process, not per tunnel.
	if err := open(0); err != nil {
		return err
	}
	time.Sleep(settle)
	warm, err := rssKiB(pid)
	if err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		if err := open(i); err != nil {
			return err
		}
	}
	time.Sleep(settle)
	after, err := rssKiB(pid)
	if err != nil {
		return err
	}
	fmt.Printf("daemon_rss_kib_empty=%d\n", empty)
	fmt.Printf("daemon_rss_kib_one_tunnel=%d\n", warm)
	fmt.Printf("daemon_rss_kib_%d_more_idle_tunnels=%d\n", n, after)
	fmt.Printf("tunnel_rss_kib_per_idle_tunnel=%d\n", (after-warm)/int64(n))
	fmt.Printf("tunnel_rss_kib_per_idle_tunnel_incl_first=%d\n", (after-empty)/int64(n+1))
	for i := 0; i <= n; i++ {
		cl.Release(ctx, fmt.Sprintf("/bench/idle/%d", i))
	}
	return nil
}

func rssKiB(pid int) (int64, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// pki makes a CA and a server certificate for serverName.
func pki(dir string) (string, *tls.Config, error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idle bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return "", nil, err
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: serverName}, DNSNames: []string{serverName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	parent, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, parent, &srvKey.PublicKey, caKey)
	if err != nil {
		return "", nil, err
	}
	caFile := filepath.Join(dir, "idle-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return "", nil, err
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
		ClientAuth:   tls.RequireAnyClientCert,
	}
	return caFile, conf, nil
}
