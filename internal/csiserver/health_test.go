package csiserver

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/proto"
)

func TestVolumeConditionSurvivesTheWire(t *testing.T) {
	for _, tt := range []struct {
		health   []*csi.VolumeHealth_VolumeHealthEntry
		abnormal bool
		msg      string
	}{
		{nil, false, "healthy"},
		{[]*csi.VolumeHealth_VolumeHealthEntry{Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "NotMounted", "/x is not mounted")}, true, "NotMounted: /x is not mounted"},
	} {
		resp := &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{{Unit: csi.VolumeUsage_BYTES, Total: 10}}}
		SetVolumeCondition(resp, tt.health)
		wire, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		var got csi.NodeGetVolumeStatsResponse
		if err := proto.Unmarshal(wire, &got); err != nil {
			t.Fatal(err)
		}
		abnormal, msg, ok := VolumeCondition(&got)
		if !ok || abnormal != tt.abnormal || msg != tt.msg {
			t.Fatalf("decoded condition = %v %q %v, want %v %q", abnormal, msg, ok, tt.abnormal, tt.msg)
		}
		if got.GetUsage()[0].GetTotal() != 10 {
			t.Fatal("usage lost next to the condition")
		}
	}
	// The bytes must be what a CSI 1.12 decoder reads as field 2:
	// tag 0x12, length 8, then {0x08 0x01 (abnormal) 0x12 0x04 "R: m"}.
	resp := &csi.NodeGetVolumeStatsResponse{}
	SetVolumeCondition(resp, []*csi.VolumeHealth_VolumeHealthEntry{Unhealthy(0, "R", "m")})
	wire, _ := proto.Marshal(resp)
	want := []byte{0x12, 0x08, 0x08, 0x01, 0x12, 0x04, 'R', ':', ' ', 'm'}
	if string(wire) != string(want) {
		t.Fatalf("wire = % x", wire)
	}
}

func TestListenSocketAppearsReady(t *testing.T) {
	path := filepath.Join(t.TempDir(), "csi.sock")
	lis, err := Listen("unix://" + path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial right after Listen: %v", err)
	}
	conn.Close()
	if matches, _ := filepath.Glob(path + ".*"); len(matches) != 0 {
		t.Fatalf("temporary socket left: %v", matches)
	}
	lis.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left after Close: %v", err)
	}
}
