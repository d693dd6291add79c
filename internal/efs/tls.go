package efs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/tunnel"
)

// Tunnels is what the node needs of the EFS TLS tunnels: one local port per
// tunnel.Spec, shared by every mount of it and counted by mount key.
// *tunnel.Manager (tunnels in this process) and *tunnel.Client (tunnels in
// `ec2csi tunnel-daemon`) both satisfy it.
type Tunnels interface {
	// Acquire returns the local port of spec's tunnel and records mountKey
	// as one of its users; the same key and spec again is idempotent.
	Acquire(ctx context.Context, spec tunnel.Spec, mountKey string) (port int, err error)
	// Release drops mountKey's use; an unknown key is not an error.
	Release(ctx context.Context, mountKey string) error
}

var (
	_ Tunnels = (*tunnel.Manager)(nil)
	_ Tunnels = (*tunnel.Client)(nil)
)

// useTLS decides whether one publish goes through a TLS tunnel, as the
// upstream driver and efs-utils decide: the node's default, then the
// volume context's encryptInTransit, then the mount options, which are the
// most specific (tls forces it on, notls off). EFS itself serves access
// points and IAM authorization only over TLS, so asking for either without
// it is refused here rather than by a mount that fails later.
func useTLS(def bool, req MountRequest, flags mountFlags) (bool, error) {
	on := def
	if req.Context.EncryptInTransit != nil {
		on = *req.Context.EncryptInTransit
	}
	switch {
	case flags.TLS:
		on = true
	case flags.NoTLS:
		on = false
	}
	if on {
		return true, nil
	}
	why := "mount option notls"
	if !flags.NoTLS {
		why = "encryptInTransit=false"
	}
	if req.Handle.AccessPointID != "" {
		return false, status.Errorf(codes.InvalidArgument,
			"access point %s needs encryption in transit, but %s turns it off: EFS serves access points only over TLS; remove %s",
			req.Handle.AccessPointID, why, why)
	}
	if flags.IAM {
		return false, status.Errorf(codes.InvalidArgument,
			"IAM authorization (mount option iam) needs encryption in transit, but %s turns it off: EFS authorizes with IAM only over TLS; remove %s or iam",
			why, why)
	}
	return false, nil
}

// tunnelCode gives tunnel errors the gRPC code a CO can act on.
func tunnelCode(err error) error {
	switch {
	case errors.Is(err, tunnel.ErrNoPorts):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, tunnel.ErrMountConflict):
		return status.Error(codes.AlreadyExists, err.Error())
	}
	return err
}

// tunnelUse is what one publish took from the tunnels.
type tunnelUse struct {
	fileSystemID, accessPointID string
	port                        int // 0 for a publish without TLS
}

// tunnelBook remembers, in memory, which publishes of this process hold
// which tunnel port: for volume health, and so that releasing a publish
// known to have no tunnel does not need the tunnel daemon. After a restart
// it starts empty; releases of unknown keys then go to the tunnels, which
// ignore keys they do not hold.
type tunnelBook struct {
	mu   sync.Mutex
	uses map[string]tunnelUse
}

func (b *tunnelBook) add(key string, u tunnelUse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.uses == nil {
		b.uses = map[string]tunnelUse{}
	}
	b.uses[key] = u
}

// remove forgets key and reports whether it may hold a tunnel.
func (b *tunnelBook) remove(key string) (mayHoldTunnel bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, ok := b.uses[key]
	delete(b.uses, key)
	return !ok || u.port != 0
}

// ports lists the tunnel ports publishes of h hold.
func (b *tunnelBook) ports(h Handle) []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := map[int]bool{}
	var out []int
	for _, u := range b.uses {
		if u.port != 0 && u.fileSystemID == h.FileSystemID && u.accessPointID == h.AccessPointID && !seen[u.port] {
			seen[u.port] = true
			out = append(out, u.port)
		}
	}
	return out
}

// check reports a tunnel of h whose port nobody listens on: the tunnel
// daemon is down, or a restored port could not be bound. It looks at the
// kernel's socket table instead of connecting, because a connection would
// make the tunnel dial and handshake with the mount target on every
// health check.
func (b *tunnelBook) check(h Handle) error {
	ports := b.ports(h)
	if len(ports) == 0 {
		return nil
	}
	listening, err := listeningPorts()
	if err != nil {
		return fmt.Errorf("check TLS tunnels: %w", err)
	}
	for _, p := range ports {
		if !listening[p] {
			return fmt.Errorf("the TLS tunnel of volume %s on 127.0.0.1:%d is not listening (is ec2csi tunnel-daemon running?): %w", h, p, cloud.ErrUnavailable)
		}
	}
	return nil
}

// listeningPorts reads the TCP ports in LISTEN state from /proc/net/tcp,
// which shows the sockets of this network namespace (the host's, for a
// node plugin on the host network).
func listeningPorts() (map[int]bool, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[int]bool{}
	s := bufio.NewScanner(f)
	s.Scan() // header
	for s.Scan() {
		fields := strings.Fields(s.Text())
		// sl local_address rem_address st ...; st 0A is LISTEN.
		if len(fields) < 4 || fields[3] != "0A" {
			continue
		}
		_, portHex, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(portHex, 16, 16); err == nil {
			out[int(p)] = true
		}
	}
	return out, s.Err()
}
