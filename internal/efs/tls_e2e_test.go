package efs_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/cloud/local"
	"github.com/ec2csi/ec2csi/internal/csiserver"
	"github.com/ec2csi/ec2csi/internal/plugin"
	"github.com/ec2csi/ec2csi/internal/testenv"
	"github.com/ec2csi/ec2csi/internal/tunnel"
)

// These tests run EFS encryption in transit on the local backend through
// the real plugin: gRPC, real bind mounts, the tunnel Manager (in process
// or in a tunnel daemon) and the backend's TLS mount target, which checks
// every client certificate.

// Ports of the tunnels the tests' plugins run, away from the default range
// in case something else on the machine uses it.
const tlsPortMin, tlsPortMax = 20800, 20899

// tlsChildEnv makes this test binary serve as a TLS node plugin, so the
// restart test can kill it with SIGKILL. Checked in init, before the
// TestMain of crash_test.go, which has a child mode of its own.
const tlsChildEnv = "EC2CSI_EFS_TLS_TEST_SERVE"

func init() {
	if v := os.Getenv(tlsChildEnv); v != "" {
		dir, metrics, _ := strings.Cut(v, "|")
		cfg := tlsConfig(dir, metrics)
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		p, err := plugin.New(context.Background(), cfg)
		if err == nil {
			err = p.Run(context.Background())
		}
		fmt.Fprintln(os.Stderr, "TLS child:", err)
		os.Exit(2)
	}
}

func tlsConfig(dir, metrics string) plugin.Config {
	cfg := efsConfig(dir)
	withTLS(metrics)(&cfg)
	return cfg
}

// withTLS turns --efs-tls on, with the test's tunnel ports and a metrics
// endpoint on metrics.
func withTLS(metrics string) func(*plugin.Config) {
	return func(cfg *plugin.Config) {
		on := true
		cfg.EFSTLS = &on
		cfg.TunnelPortMin, cfg.TunnelPortMax = tlsPortMin, tlsPortMax
		cfg.MetricsAddress = metrics
	}
}

// freeAddr returns a loopback address nobody listens on, for the metrics
// endpoint, whose port the test must know.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// tlsEnv is a plugin serving the EFS driver with --efs-tls.
type tlsEnv struct {
	*env
	metrics string
}

// startTLS serves the EFS driver with --efs-tls in this process, on a state
// directory holding the file system fsID.
func startTLS(t *testing.T, mutate ...func(*plugin.Config)) *tlsEnv {
	t.Helper()
	metrics := freeAddr(t)
	return &tlsEnv{env: startEFS(t, append([]func(*plugin.Config){withTLS(metrics)}, mutate...)...), metrics: metrics}
}

var (
	reFileSystem = regexp.MustCompile(`file_system="([^"]+)"`)
	rePort       = regexp.MustCompile(`port="(\d+)"`)
)

// tunnelPorts reads the plugin's tunnels from its metrics: port → file
// system.
func tunnelPorts(t *testing.T, metrics string) map[int]string {
	t.Helper()
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[int]string{}
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, "ec2csi_tunnel_connections_total{") {
			continue
		}
		fs, port := reFileSystem.FindStringSubmatch(line), rePort.FindStringSubmatch(line)
		if fs == nil || port == nil {
			t.Fatalf("metric without labels: %s", line)
		}
		n, _ := strconv.Atoi(port[1])
		out[n] = fs[1]
	}
	return out
}

// onlyTunnel returns the port of the one tunnel, which must be fsID's.
func onlyTunnel(t *testing.T, metrics string) int {
	t.Helper()
	ports := tunnelPorts(t, metrics)
	if len(ports) != 1 {
		t.Fatalf("tunnels %v, want one", ports)
	}
	for p, fs := range ports {
		if fs != fsID {
			t.Fatalf("tunnel on %d is for %s", p, fs)
		}
		return p
	}
	return 0
}

func tunnelAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// refused reports whether nothing listens on port any more.
func refused(port int) bool {
	c, err := net.DialTimeout("tcp", tunnelAddr(port), time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

func TestLocalTLSPublishEndToEnd(t *testing.T) {
	e := startTLS(t)
	ctx := t.Context()
	v, err := e.create(t, "tls-shared", params())
	if err != nil {
		t.Fatal(err)
	}
	id := v.GetVolumeId()
	a, b := filepath.Join(e.dir, "pod-a"), filepath.Join(e.dir, "pod-b")
	for _, tgt := range []string{a, b} {
		for range 2 { // a CSI retry is a no-op success
			if _, err := e.node.NodePublishVolume(ctx, publishReq(id, tgt, rwx, false)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(a, "out.txt"), []byte("through TLS"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(b, "out.txt")); err != nil || string(got) != "through TLS" {
		t.Fatalf("read in b: %q, %v", got, err)
	}
	// Both targets share one tunnel, and it leads to the mount target,
	// which accepts its certificate.
	port := onlyTunnel(t, e.metrics)
	if port < tlsPortMin || port > tlsPortMax {
		t.Errorf("tunnel port %d outside the range", port)
	}
	if err := local.Probe(ctx, tunnelAddr(port)); err != nil {
		t.Fatalf("greeting through the tunnel: %v", err)
	}

	// A handle naming another file system's access point gets a
	// certificate for that pair, which the mount target refuses; nothing
	// is mounted and the tunnel made for it is gone.
	const fsB = "fs-0000000b"
	if _, err := e.backend.CreateFileSystem(ctx, fsB, ""); err != nil {
		t.Fatal(err)
	}
	apB, err := e.backend.CreateAccessPoint(ctx, cloud.CreateAccessPointInput{FileSystemID: fsB, ClientToken: "b", RootDirectory: "/b"})
	if err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(e.dir, "pod-c")
	_, err = e.node.NodePublishVolume(ctx, publishReq(fsID+"::"+apB.ID, c, rwx, false))
	wantCode(t, err, codes.PermissionDenied, "the mount target refused the client certificate: access point "+apB.ID+" belongs to file system "+fsB+", not "+fsID)
	if mounts, _ := testenv.MountsUnder(c); len(mounts) != 0 {
		t.Errorf("a refused publish mounted %v", mounts)
	}
	if got := tunnelPorts(t, e.metrics); len(got) != 1 {
		t.Errorf("after the refusal: tunnels %v", got)
	}

	// Without TLS a sub path is a plain bind mount; an access point
	// cannot go without TLS, as on EFS.
	if err := os.MkdirAll(e.fsPath("plain"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(e.dir, "pod-plain")
	req := publishReq(fsID+":/plain", plain, rwx, false)
	req.VolumeContext = map[string]string{"encryptInTransit": "false"}
	if _, err := e.node.NodePublishVolume(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := tunnelPorts(t, e.metrics); len(got) != 1 {
		t.Errorf("a publish without TLS changed the tunnels: %v", got)
	}
	req = publishReq(id, filepath.Join(e.dir, "pod-d"), rwx, false)
	req.VolumeContext = map[string]string{"encryptInTransit": "false"}
	_, err = e.node.NodePublishVolume(ctx, req)
	wantCode(t, err, codes.InvalidArgument, "EFS serves access points only over TLS")

	stats, err := e.node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: a})
	if err != nil {
		t.Fatal(err)
	}
	if abnormal, msg, ok := csiserver.VolumeCondition(stats); !ok || abnormal {
		t.Errorf("condition of a healthy TLS volume: abnormal=%v %q", abnormal, msg)
	}

	// The tunnel lives as long as its last target.
	unpublish := func(id, tgt string) {
		t.Helper()
		if _, err := e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: tgt}); err != nil {
			t.Fatal(err)
		}
	}
	unpublish(id, a)
	if err := local.Probe(ctx, tunnelAddr(port)); err != nil {
		t.Fatalf("the tunnel went with the first of two targets: %v", err)
	}
	unpublish(id, b)
	if !refused(port) {
		t.Error("the last unpublish left the tunnel listening")
	}
	if got := tunnelPorts(t, e.metrics); len(got) != 0 {
		t.Errorf("tunnels left: %v", got)
	}
	unpublish(fsID+":/plain", plain)
	if b, _ := os.ReadFile(e.fsPath("tls-shared/out.txt")); string(b) != "through TLS" {
		t.Error("data lost")
	}
}

// TestLocalTLSThroughTunnelDaemon: with --tunnel-daemon-socket the tunnels
// live in `ec2csi tunnel-daemon`, here RunDaemon in this process.
func TestLocalTLSThroughTunnelDaemon(t *testing.T) {
	testenv.RequireRoot(t)
	ctx, cancel := context.WithCancel(t.Context())
	daemonDir := filepath.Join(t.TempDir(), "tunnel")
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- tunnel.RunDaemon(ctx, tunnel.DaemonConfig{
			Manager: tunnel.ManagerConfig{StateDir: daemonDir, PortMin: 20900, PortMax: 20949, Logger: testenv.Logger(t)},
			Ready:   ready,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("tunnel daemon: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	sock := filepath.Join(daemonDir, tunnel.SocketFile)
	e := startTLS(t, func(c *plugin.Config) { c.TunnelDaemonSocket = sock })
	v, err := e.create(t, "via-daemon", params())
	if err != nil {
		t.Fatal(err)
	}
	tgt := filepath.Join(e.dir, "pod")
	if _, err := e.node.NodePublishVolume(ctx, publishReq(v.GetVolumeId(), tgt, rwx, false)); err != nil {
		t.Fatal(err)
	}
	client := tunnel.NewClient(sock)
	tuns, err := client.Tunnels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tuns) != 1 || len(tuns[0].Mounts) != 1 || tuns[0].Mounts[0] != tgt || tuns[0].Spec.AccessPointID == "" {
		t.Fatalf("daemon tunnels %+v", tuns)
	}
	if err := local.Probe(ctx, tunnelAddr(tuns[0].Port)); err != nil {
		t.Fatal(err)
	}
	if got := tunnelPorts(t, e.metrics); len(got) != 0 {
		t.Errorf("the plugin runs tunnels of its own: %v", got)
	}
	if _, err := e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: tgt}); err != nil {
		t.Fatal(err)
	}
	if tuns, err := client.Tunnels(ctx); err != nil || len(tuns) != 0 {
		t.Errorf("after unpublish: %+v, %v", tuns, err)
	}
}

// tlsChild is the plugin run as a process of its own.
type tlsChild struct {
	cmd  *exec.Cmd
	conn *grpc.ClientConn
	ctrl csi.ControllerClient
	node csi.NodeClient
}

func startTLSChild(t *testing.T, dir, metrics string) *tlsChild {
	t.Helper()
	sock := filepath.Join(dir, "csi.sock")
	os.Remove(sock)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), tlsChildEnv+"="+dir+"|"+metrics)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitForSocket(t, sock, 30*time.Second)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return &tlsChild{cmd: cmd, conn: conn, ctrl: csi.NewControllerClient(conn), node: csi.NewNodeClient(conn)}
}

func (c *tlsChild) kill() {
	c.conn.Close()
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

// TestLocalTLSTunnelSurvivesPluginKill: a node plugin killed with SIGKILL
// and started again binds its tunnels' ports again before it serves CSI,
// so the path of a published volume works again at once; unpublishing
// afterwards releases the tunnel the old process made.
func TestLocalTLSTunnelSurvivesPluginKill(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	ctx := t.Context()
	b, err := local.Open(ctx, filepath.Join(dir, "state"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateFileSystem(ctx, fsID, "test"); err != nil {
		t.Fatal(err)
	}
	metrics := freeAddr(t)
	child := startTLSChild(t, dir, metrics)
	t.Cleanup(func() {
		child.kill()
		testenv.RequireNoMountsUnder(t, dir)
	})
	resp, err := child.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: "survivor", Parameters: params(), VolumeCapabilities: []*csi.VolumeCapability{rwx},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetVolume().GetVolumeId()
	tgt := filepath.Join(dir, "pod")
	if _, err := child.node.NodePublishVolume(ctx, publishReq(id, tgt, rwx, false)); err != nil {
		t.Fatal(err)
	}
	port := onlyTunnel(t, metrics)
	if err := local.Probe(ctx, tunnelAddr(port)); err != nil {
		t.Fatal(err)
	}

	child.kill()
	if !refused(port) {
		t.Fatal("the tunnel port still answers after the plugin died")
	}
	start := time.Now()
	child = startTLSChild(t, dir, metrics)
	// The CSI socket appears only after the ports are bound again.
	if refused(port) {
		t.Fatal("the restarted plugin serves CSI before rebinding the tunnel port")
	}
	if err := local.Probe(ctx, tunnelAddr(port)); err != nil {
		t.Fatalf("greeting after the restart: %v", err)
	}
	t.Logf("tunnel answered again %v after the new process started", time.Since(start))
	if got := onlyTunnel(t, metrics); got != port {
		t.Errorf("restored on %d, was %d", got, port)
	}
	if mounts, _ := testenv.MountsUnder(tgt); len(mounts) != 1 {
		t.Errorf("the publish's mount: %v", mounts)
	}
	// The kubelet may publish again after a restart: same tunnel.
	if _, err := child.node.NodePublishVolume(ctx, publishReq(id, tgt, rwx, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := child.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: tgt}); err != nil {
		t.Fatal(err)
	}
	if !refused(port) {
		t.Error("unpublish after the restart left the tunnel listening")
	}
	if got := tunnelPorts(t, metrics); len(got) != 0 {
		t.Errorf("tunnels left: %v", got)
	}
}
