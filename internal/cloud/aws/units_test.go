package aws

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestWireTokens(t *testing.T) {
	long := strings.Repeat("x", 64)
	for _, tc := range []struct {
		fs, token string
		hashed    bool
	}{
		{"fs-0123456789abcdef0", "pvc-2a8b5c7e-1f3d-4b6a-9c0e-123456789abc", false},
		{"fs-01234567", "pvc-2a8b5c7e-1f3d-4b6a-9c0e-123456789abc", false},
		{"fs-0123456789abcdef0", long, true},
		{"fs-0123456789abcdef0", "~starts-with-tilde", true},
	} {
		wire, hashed := wireToken(tc.fs, tc.token)
		if len(wire) > 64 || hashed != tc.hashed {
			t.Errorf("%s %s: wire %q (%d chars), hashed %v", tc.fs, tc.token, wire, len(wire), hashed)
		}
		tags := map[string]string{}
		if hashed {
			tags[TagClientToken] = tc.token
		}
		if got := callerToken(tc.fs, wire, tags); got != tc.token {
			t.Errorf("callerToken(%q) = %q, want %q", wire, got, tc.token)
		}
		// Another file system gets another token for the same volume.
		if other, _ := wireToken("fs-fedcba9876543210f", tc.token); other == wire {
			t.Errorf("same wire token %q on two file systems", wire)
		}
	}
	// The upstream driver's access points carry the plain volume name.
	if got := callerToken("fs-0123456789abcdef0", "pvc-abc", nil); got != "pvc-abc" {
		t.Errorf("upstream token read as %q", got)
	}
	// A hashed token whose tag does not match stays as it is.
	wire, _ := wireToken("fs-0123456789abcdef0", long)
	if got := callerToken("fs-0123456789abcdef0", wire, map[string]string{TagClientToken: "forged"}); got != wire {
		t.Errorf("forged tag accepted: %q", got)
	}
}

func TestParseRateLimits(t *testing.T) {
	l, err := ParseRateLimits("DescribeVolumes=20, CreateVolume=5:10,*=50,Slow=0.5")
	if err != nil {
		t.Fatal(err)
	}
	want := RateLimits{"DescribeVolumes": {20, 20}, "CreateVolume": {5, 10}, "*": {50, 50}, "Slow": {0.5, 1}}
	if l.String() != want.String() {
		t.Errorf("got %s, want %s", l, want)
	}
	if l, err := ParseRateLimits(""); err != nil || len(l) != 0 {
		t.Errorf("empty: %v %v", l, err)
	}
	for _, bad := range []string{"DescribeVolumes", "=5", "X=0", "X=-1", "X=abc", "X=5:0", "X=1,X=2", "X=Inf"} {
		if _, err := ParseRateLimits(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestLimiter: a bucket of 20 a second with a burst of 5 lets 25 calls
// through in about a second, and "*" limits every other API on its own.
func TestLimiter(t *testing.T) {
	l := newLimiter(RateLimits{"A": {PerSecond: 20, Burst: 5}, "*": {PerSecond: 1000, Burst: 1}})
	ctx := context.Background()
	start := time.Now()
	for range 25 {
		if _, err := l.wait(ctx, "A"); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("25 calls at 20/s after a burst of 5 took %s, want about 1 s", d)
	}
	if w, _ := l.wait(ctx, "B"); w != 0 {
		t.Errorf("first call of another API waited %s", w)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.wait(cancelled, "A"); err == nil {
		t.Error("waiting with a cancelled context succeeded")
	}
}

func TestAttachLimit(t *testing.T) {
	for _, tc := range []struct {
		typ            string
		enis, reserved int
		want           int
	}{
		{"m5.large", 1, 1, 26},
		{"m5.large", 3, 1, 24},  // VPC CNI with three interfaces
		{"m5d.large", 1, 1, 25}, // one NVMe instance store disk
		{"m5d.24xlarge", 1, 1, 22},
		{"c6id.2xlarge", 2, 2, 23},
		{"i3en.24xlarge", 1, 1, 17},
		{"d3en.12xlarge", 1, 1, 2},
		{"p4d.24xlarge", 4, 1, 15},
		{"m4.large", 5, 1, 39}, // Xen: interfaces do not count
		{"i3.metal", 1, 1, 10}, // Nitro, unlike the other i3 sizes; 8 disks, counted as 16
		{"t2.micro", 1, 2, 38},
		{"", 0, 0, 26},             // unknown: as a Nitro instance
		{"x9z.bigger", 30, 1, 1},   // never below 1
		{"m7i.48xlarge", 1, 1, 26}, // dedicated-limit types are counted as shared
	} {
		if got := AttachLimit(tc.typ, tc.enis, tc.reserved); got != tc.want {
			t.Errorf("AttachLimit(%q, %d, %d) = %d, want %d", tc.typ, tc.enis, tc.reserved, got, tc.want)
		}
	}
}
