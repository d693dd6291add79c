// Package testenv holds what the project's tests need from the machine:
// root, free of leftover mounts and loop devices, and a log that goes to
// the test's output.
package testenv

import (
	"bufio"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RequireRoot skips the test unless it runs as root; the project's test
// command runs as root, so a skip there is visible in the count.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for real mounts")
	}
}

// Logger returns a logger that writes to the test's log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// WaitForSocket waits until a unix socket file appears.
func WaitForSocket(t testing.TB, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("socket %s did not appear within %s", path, timeout)
}

// MountsUnder lists mount points at or below dir.
func MountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 {
			mp := strings.ReplaceAll(fields[4], `\040`, " ")
			if mp == dir || strings.HasPrefix(mp, dir+"/") {
				out = append(out, mp)
			}
		}
	}
	return out, s.Err()
}

// RequireNoMountsUnder fails the test if anything is still mounted below
// dir: every test must clean up after itself.
func RequireNoMountsUnder(t testing.TB, dir string) {
	t.Helper()
	m, err := MountsUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) > 0 {
		t.Fatalf("mounts left behind under %s: %v", dir, m)
	}
}

// LoopDevicesUnder lists loop devices whose backing file is below dir.
func LoopDevicesUnder(dir string) ([]string, error) {
	matches, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		if f := strings.TrimSpace(string(b)); strings.HasPrefix(f, dir+"/") {
			out = append(out, filepath.Base(filepath.Dir(filepath.Dir(m)))+"="+f)
		}
	}
	return out, nil
}

// RequireNoLoopDevicesUnder fails the test if a loop device still backs
// onto a file below dir: detaching must never leak one.
func RequireNoLoopDevicesUnder(t testing.TB, dir string) {
	t.Helper()
	l, err := LoopDevicesUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) > 0 {
		t.Fatalf("loop devices left attached under %s: %v", dir, l)
	}
}

// CapSysResource is the capability the kernel wants for growing a mounted
// ext4 file system; this machine's root may lack it.
const CapSysResource = 24

// HasCapability reports whether the process has capability bit c in its
// effective set.
func HasCapability(c uint) bool {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n>>c&1 == 1
		}
	}
	return false
}
