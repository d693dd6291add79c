package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string][2]int{"20049-21049": {20049, 21049}, "1-1": {1, 1}} {
		lo, hi, err := parsePortRange(in)
		if err != nil || lo != want[0] || hi != want[1] {
			t.Errorf("%q: %d-%d %v", in, lo, hi, err)
		}
	}
	for _, bad := range []string{"", "20049", "2-1", "0-5", "1-70000", "a-b"} {
		if _, _, err := parsePortRange(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestTunnelCommandRunsUntilCancelled starts `ec2csi tunnel` without a
// client certificate against a local address and stops it with the
// context, as SIGTERM does.
func TestTunnelCommandRunsUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"tunnel", "--listen", addr, "--target", "127.0.0.1:1", "--server-name", "example.test"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("tunnel never listened on %s: %v", addr, <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tunnel command: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tunnel command did not stop")
	}
	// Missing required flags are refused.
	root = newRootCommand()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"tunnel", "--listen", addr})
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("missing flags: %v", err)
	}
}
