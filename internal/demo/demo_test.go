package demo

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ec2csi/ec2csi/internal/testenv"
)

func TestDemoRunsAndCleansUp(t *testing.T) {
	testenv.RequireRoot(t)
	parent := t.TempDir()
	var out bytes.Buffer
	if err := Run(context.Background(), &out, Options{Dir: parent}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"CreateVolume", "NodePublishVolume", `"hello from pod-a": both pods`, "NodeUnpublishVolume", "DeleteVolume",
		"NodeStageVolume", "the pod now sees 12", "CreateSnapshot", `"rows written before the snapshot" and nothing written later`, "DeleteSnapshot"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	assertClean(t, parent)
}

// TestInterruptedDemoCleansUp cancels the demo (as Ctrl-C does) right
// after the first pod mounted the volume.
func TestInterruptedDemoCleansUp(t *testing.T) {
	testenv.RequireRoot(t)
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	err := Run(ctx, &out, Options{Dir: parent, AfterStep: func(title string) {
		if strings.HasPrefix(title, "NodePublishVolume") {
			cancel()
		}
	}})
	if err == nil {
		t.Fatalf("interrupted demo reported success:\n%s", out.String())
	}
	assertClean(t, parent)
}

func assertClean(t *testing.T, parent string) {
	t.Helper()
	testenv.RequireNoMountsUnder(t, parent)
	testenv.RequireNoLoopDevicesUnder(t, parent)
	entries, err := os.ReadDir(parent)
	if err != nil || len(entries) != 0 {
		t.Fatalf("demo left %v behind (%v)", entries, err)
	}
}

// TestInterruptedEBSDemoCleansUp interrupts the demo while an EBS volume is
// attached, staged and published.
func TestInterruptedEBSDemoCleansUp(t *testing.T) {
	testenv.RequireRoot(t)
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	err := Run(ctx, &out, Options{Dir: parent, AfterStep: func(title string) {
		if strings.HasPrefix(title, "pod-db writes") {
			cancel()
		}
	}})
	if err == nil {
		t.Fatalf("interrupted demo reported success:\n%s", out.String())
	}
	assertClean(t, parent)
}
