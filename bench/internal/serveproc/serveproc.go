// Package serveproc runs `ec2csi serve` as its own process for the
// benchmarks, so they measure the plugin as it is deployed, and connects to
// its socket.
package serveproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Plugin is one `ec2csi serve` process and clients to its socket.
type Plugin struct {
	Cmd  *exec.Cmd
	Conn *grpc.ClientConn
	Ctrl csi.ControllerClient
	Node csi.NodeClient
}

// Start runs `bin serve ARGS…` with env added to this process's, serving
// on the unix socket sock (which ARGS must name), and connects once the
// socket is there. The socket appears only once it accepts connections.
func Start(bin, sock string, env []string, args ...string) (*Plugin, error) {
	os.Remove(sock)
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("ec2csi serve %v did not start", args)
		}
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	return &Plugin{Cmd: cmd, Conn: conn, Ctrl: csi.NewControllerClient(conn), Node: csi.NewNodeClient(conn)}, nil
}

// Stop ends the plugin as Kubernetes stops a pod: SIGTERM, then SIGKILL
// after a grace period.
func (p *Plugin) Stop() {
	p.Conn.Close()
	p.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.Cmd.Process.Kill()
		<-done
	}
}

// Kill ends the plugin at once.
func (p *Plugin) Kill() {
	p.Conn.Close()
	p.Cmd.Process.Kill()
	p.Cmd.Wait()
}

// FakeAWSEnv points the AWS SDK at the fake at url, with static credentials
// and no shared config, IMDS or credentials from the machine (dir holds the
// empty config paths).
func FakeAWSEnv(url, dir string) []string {
	none := filepath.Join(dir, "none")
	return []string{"AWS_ENDPOINT_URL=" + url, "AWS_ACCESS_KEY_ID=AKIDAWSFAKE", "AWS_SECRET_ACCESS_KEY=awsfake-secret",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + none, "AWS_SHARED_CREDENTIALS_FILE=" + none}
}
