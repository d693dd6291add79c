package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Tests against software written by others: stunnel4 as the TLS server,
// nfs-ganesha as the NFS server and libnfs's nfs-cat as the NFS client.
// scripts/install-test-deps.sh installs them; without them these tests
// skip, except under CI where they fail.

func requirePeer(t *testing.T, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (scripts/install-test-deps.sh installs it)", c)
			}
			t.Skipf("%s is not installed; run scripts/install-test-deps.sh", c)
		}
	}
}

// waitListening polls until addr accepts TCP connections.
func waitListening(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening after %v: %v", addr, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startProcess runs cmd until the test ends, killing it then.
func startProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
}

// startStunnelServer runs stunnel4 as a TLS server on tlsPort in front of
// the plain TCP server at backend: the stand-in for an EFS mount target.
func startStunnelServer(t *testing.T, pki *testPKI, tlsPort int, backend string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "stunnel-server.conf")
	addr := "127.0.0.1:" + strconv.Itoa(tlsPort)
	body := fmt.Sprintf(`foreground = yes
pid =
[efs]
accept = %s
connect = %s
cert = %s
sslVersionMin = TLSv1.2
`, addr, backend, pki.certFile)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("stunnel4", conf)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Registered before the process so that it runs after the process is
	// stopped (cleanups run last first).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stunnel server output:\n%s", out.String())
		}
	})
	startProcess(t, cmd)
	waitListening(t, addr, 10*time.Second)
	return addr
}

// lockedBuffer collects a child's output, which exec copies from its own
// goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestThroughStunnelServer(t *testing.T) {
	requirePeer(t, "stunnel4")
	pki := newTestPKI(t)
	echoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echoLn.Close()
	go func() {
		for {
			c, err := echoLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	lo, hi := freePortRange(t, 3)
	tlsAddr := startStunnelServer(t, pki, hi, echoLn.Addr().String())
	m := newTestManager(t, t.TempDir(), lo, hi-1, nil)
	defer m.Close()
	port, err := m.Acquire(context.Background(), Spec{
		FileSystemID: "fs-12345678", Target: tlsAddr, ServerName: testServerName, CAFile: pki.caFile,
	}, "/mnt/stunnel")
	if err != nil {
		t.Fatal(err)
	}
	// Several connections at once, each carrying data both ways. They close
	// only after the whole echo is back, as NFS does: stunnel 5.68 as a
	// server drops response data still in flight once its client
	// half-closes (close_notify, FIN or both; seen with a plain Go TLS
	// client too), so half-close is tested against the Go server instead.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialLocal(t, port)
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			payload := make([]byte, 16<<20+i*4099)
			gen := keystream(uint64(i), 0)
			gen.XORKeyStream(payload, payload)
			want := sha256.Sum256(payload)
			go c.Write(payload)
			h := sha256.New()
			n, err := io.CopyN(h, c, int64(len(payload)))
			if err != nil || n != int64(len(payload)) || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Errorf("conn %d: echoed %d of %d bytes, err %v, checksum ok %v", i, n, len(payload), err, bytes.Equal(h.Sum(nil), want[:]))
			}
		}()
	}
	wg.Wait()
}

// keystream is a seekable deterministic byte stream (AES-CTR from a block
// offset), so a resumed transfer can be checked without storing it.
func keystream(seed uint64, offset int64) cipher.Stream {
	key := make([]byte, 16)
	binary.BigEndian.PutUint64(key, seed)
	block, _ := aes.NewCipher(key)
	iv := make([]byte, 16)
	binary.BigEndian.PutUint64(iv[8:], uint64(offset/16))
	s := cipher.NewCTR(block, iv)
	skip := make([]byte, offset%16)
	s.XORKeyStream(skip, skip)
	return s
}

// writeStreamFile writes size bytes of keystream(seed) to path and returns
// their SHA-256.
func writeStreamFile(t *testing.T, path string, seed uint64, size int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	gen := keystream(seed, 0)
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		clear(buf[:n])
		gen.XORKeyStream(buf[:n], buf[:n])
		w.Write(buf[:n])
		left -= n
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// startGanesha runs nfs-ganesha in the foreground serving dir as /export
// over NFSv4 on 127.0.0.1:port.
func startGanesha(t *testing.T, dir string, port int) string {
	t.Helper()
	work := t.TempDir()
	recovery := filepath.Join(work, "recovery")
	os.MkdirAll(recovery, 0o755)
	conf := fmt.Sprintf(`NFS_CORE_PARAM {
    Bind_addr = 127.0.0.1;
    NFS_Port = %d;
    NFS_Protocols = 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Plugins_Dir = "/usr/lib/x86_64-linux-gnu/ganesha";
}
NFS_KRB5 { Active_krb5 = false; }
NFSV4 {
    Graceless = true;
    Only_Numeric_Owners = true;
    Minor_Versions = 0, 1;
    RecoveryBackend = fs;
    RecoveryRoot = "%s";
}
EXPORT {
    Export_Id = 1;
    Path = "%s";
    Pseudo = "/export";
    Protocols = 4;
    Transports = TCP;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    MaxRead = 1048576;
    MaxWrite = 1048576;
    PrefRead = 1048576;
    PrefWrite = 1048576;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
`, port, recovery, dir)
	confPath := filepath.Join(work, "ganesha.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(work, "ganesha.log")
	cmd := exec.Command("ganesha.nfsd", "-F", "-f", confPath, "-L", logPath, "-p", filepath.Join(work, "ganesha.pid"))
	startProcess(t, cmd)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	waitListening(t, addr, 20*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("ganesha log (tail):\n%s", tail(string(b), 3000))
		}
	})
	return addr
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// nfsCat reads /export/name over NFSv4 through port with libnfs and returns
// its SHA-256 and size.
func nfsCat(t *testing.T, port int, name string) (string, int64, time.Duration) {
	t.Helper()
	url := fmt.Sprintf("nfs://127.0.0.1/export/%s?version=4&nfsport=%d", name, port)
	cmd := exec.Command("nfs-cat", url)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("nfs-cat %s: %v: %s", url, err, stderr.String())
	}
	return hex.EncodeToString(h.Sum(nil)), n, time.Since(start)
}

// TestNFSThroughTunnel reads a 1 GiB file from a real NFSv4 server through
// the tunnel and a stunnel TLS server, as the kernel client would through
// an EFS mount target.
func TestNFSThroughTunnel(t *testing.T) {
	requirePeer(t, "stunnel4", "ganesha.nfsd", "nfs-cat")
	size := int64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	export := t.TempDir()
	want := writeStreamFile(t, filepath.Join(export, "big"), 7, size)
	small := writeStreamFile(t, filepath.Join(export, "small"), 8, 3000)

	lo, hi := freePortRange(t, 4)
	pki := newTestPKI(t)
	nfsAddr := startGanesha(t, export, hi)
	tlsAddr := startStunnelServer(t, pki, hi-1, nfsAddr)
	m := newTestManager(t, t.TempDir(), lo, hi-2, nil)
	defer m.Close()
	port, err := m.Acquire(context.Background(), Spec{
		FileSystemID: "fs-12345678", Target: tlsAddr, ServerName: testServerName, CAFile: pki.caFile,
	}, "/var/lib/kubelet/pods/x/volumes/efs")
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := nfsCat(t, port, "small"); got != small {
		t.Fatalf("small file checksum %s, want %s", got, small)
	}
	got, n, took := nfsCat(t, port, "big")
	if n != size || got != want {
		t.Fatalf("read %d of %d bytes through the tunnel, checksum %s, want %s", n, size, got, want)
	}
	t.Logf("NFS read of %d MiB through the tunnel: %v (%.0f MB/s)", size>>20, took.Round(time.Millisecond), float64(size)/took.Seconds()/1e6)
}

// daemonEnv makes the test binary run a tunnel daemon instead of tests: the
// kill -9 test needs the tunnel in a process of its own.
const daemonEnv = "EC2CSI_TUNNEL_TEST_DAEMON"

func TestMain(m *testing.M) {
	if spec := os.Getenv(daemonEnv); spec != "" {
		os.Exit(runTestDaemon(spec))
	}
	os.Exit(m.Run())
}

// runTestDaemon runs RunDaemon from "STATEDIR,LOW,HIGH" until SIGTERM.
func runTestDaemon(spec string) int {
	parts := strings.Split(spec, ",")
	lo, _ := strconv.Atoi(parts[1])
	hi, _ := strconv.Atoi(parts[2])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := RunDaemon(ctx, DaemonConfig{Manager: ManagerConfig{
		StateDir: parts[0], PortMin: lo, PortMax: hi,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "test daemon:", err)
		return 1
	}
	return 0
}

func startTestDaemon(t *testing.T, stateDir string, lo, hi int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%d", daemonEnv, stateDir, lo, hi))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// rangeServer serves keystream(seed) from the 8-byte offset each client
// sends, up to size: a file server whose clients resume where they were
// cut off, as the NFS client re-issues its reads after a reconnect.
func rangeServer(t *testing.T, seed uint64, size int64) string {
	t.Helper()
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
			go func() {
				defer c.Close()
				var hdr [8]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				off := int64(binary.BigEndian.Uint64(hdr[:]))
				gen := keystream(seed, off)
				buf := make([]byte, 256<<10)
				for left := size - off; left > 0; {
					n := min(int64(len(buf)), left)
					clear(buf[:n])
					gen.XORKeyStream(buf[:n], buf[:n])
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
					left -= n
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestKill9DuringTransferResumesOnSamePort kills the tunnel daemon with
// SIGKILL mid-stream; a new daemon on the same state directory must have
// the port back, carrying the resumed stream, within 2 s.
func TestKill9DuringTransferResumesOnSamePort(t *testing.T) {
	requirePeer(t, "stunnel4")
	pki := newTestPKI(t)
	size := int64(768 << 20)
	if testing.Short() {
		size = 128 << 20
	}
	backend := rangeServer(t, 42, size)
	lo, hi := freePortRange(t, 4)
	tlsAddr := startStunnelServer(t, pki, hi, backend)
	state := t.TempDir()

	daemon := startTestDaemon(t, state, lo, hi-1)
	defer func() { daemon.Process.Kill(); daemon.Wait() }()
	cl := NewClient(filepath.Join(state, SocketFile))
	ctx := context.Background()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := cl.Restore(rctx); err != nil {
		t.Fatal(err)
	}
	spec := Spec{FileSystemID: "fs-12345678", Target: tlsAddr, ServerName: testServerName, CAFile: pki.caFile}
	port, err := cl.Acquire(ctx, spec, "/mnt/kill9")
	if err != nil {
		t.Fatal(err)
	}

	var (
		received   atomic.Int64
		lostAt     atomic.Int64 // unix nanos of the last connection loss
		maxGap     atomic.Int64
		reconnects atomic.Int32
	)
	h := sha256.New()
	done := make(chan error, 1)
	go func() { done <- resumableRead(port, size, h, &received, &lostAt, &maxGap, &reconnects) }()

	// Kill once a good part has gone through, then restart at once, as a
	// supervisor would.
	for received.Load() < size/4 {
		select {
		case err := <-done:
			t.Fatalf("transfer ended before the kill: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	if err := daemon.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	daemon.Wait()
	killedAt := received.Load()
	daemon = startTestDaemon(t, state, lo, hi-1)

	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(120 * time.Second):
		t.Fatal("transfer never finished")
	}
	if killedAt >= size {
		t.Fatal("the kill came after the transfer")
	}
	if reconnects.Load() < 1 {
		t.Fatal("the stream never lost its connection: the kill missed it")
	}
	gap := time.Duration(maxGap.Load())
	t.Logf("killed at %d MiB of %d; %d reconnect(s); longest gap %v", killedAt>>20, size>>20, reconnects.Load(), gap)
	if gap > 2*time.Second {
		t.Errorf("stream resumed after %v, want within 2 s", gap)
	}
	want := sha256.New()
	gen := keystream(42, 0)
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		clear(buf)
		gen.XORKeyStream(buf, buf)
		want.Write(buf[:min(int64(len(buf)), left)])
	}
	if !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Fatal("resumed stream is corrupt")
	}

	// Same port after the restart, and nothing leaked once released.
	list, err := cl.Tunnels(ctx)
	if err != nil || len(list) != 1 || list[0].Port != port || !list[0].Bound {
		t.Fatalf("after restart: %+v, %v; want one bound tunnel on %d", list, err, port)
	}
	if err := cl.Release(ctx, "/mnt/kill9"); err != nil {
		t.Fatal(err)
	}
	if list, _ := cl.Tunnels(ctx); len(list) != 0 {
		t.Errorf("tunnels left after release: %+v", list)
	}
	for p := lo; p <= hi-1; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d still taken after release: %v", p, err)
			continue
		}
		ln.Close()
	}
	daemon.Process.Signal(syscall.SIGTERM)
	daemon.Wait()
}

// resumableRead reads size bytes from the tunnel on port into h, resuming
// at the byte it got to whenever the connection drops, retrying the connect
// every 20 ms. It records the longest time from a loss to the next byte.
func resumableRead(port int, size int64, h hash.Hash, received, lostAt, maxGap *atomic.Int64, reconnects *atomic.Int32) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	buf := make([]byte, 256<<10)
	deadline := time.Now().Add(110 * time.Second)
	for received.Load() < size {
		if time.Now().After(deadline) {
			return errors.New("gave up reconnecting")
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		var hdr [8]byte
		binary.BigEndian.PutUint64(hdr[:], uint64(received.Load()))
		if _, err := c.Write(hdr[:]); err != nil {
			c.Close()
			continue
		}
		for {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := c.Read(buf)
			if n > 0 {
				if t := lostAt.Swap(0); t != 0 {
					if gap := time.Now().UnixNano() - t; gap > maxGap.Load() {
						maxGap.Store(gap)
					}
				}
				h.Write(buf[:n])
				received.Add(int64(n))
			}
			if err != nil {
				break
			}
		}
		c.Close()
		if received.Load() < size {
			reconnects.Add(1)
			lostAt.CompareAndSwap(0, time.Now().UnixNano())
		}
	}
	return nil
}
