package tunnel

import "testing"

func TestSpecForAndRegion(t *testing.T) {
	s := SpecFor("fs-1234", "fsap-9", "cn-north-1", "amazonaws.com.cn", "", true)
	if s.Target != "fs-1234.efs.cn-north-1.amazonaws.com.cn:2049" || s.ServerName != "fs-1234.efs.cn-north-1.amazonaws.com.cn" {
		t.Errorf("spec %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
	s = SpecFor("fs-1234", "", "us-west-2", "", "10.0.0.7", false)
	if s.Target != "10.0.0.7:2049" || s.ServerName != "fs-1234.efs.us-west-2.amazonaws.com" {
		t.Errorf("spec with a mount target IP %+v", s)
	}
	for name, want := range map[string]string{
		"fs-1.efs.eu-west-1.amazonaws.com":            "eu-west-1",
		"us-east-1a.fs-1.efs.us-east-1.amazonaws.com": "us-east-1",
		"example.com": "",
		"efs.x.y":     "",
	} {
		if got := (Spec{ServerName: name}).region(); got != want {
			t.Errorf("region of %q = %q, want %q", name, got, want)
		}
	}
	bad := []Spec{
		{},
		{FileSystemID: "fs-1", Target: "nohost", ServerName: "n"},
		{FileSystemID: "fs-1", Target: "h:2049"},
		{FileSystemID: "fs-1", Target: "h:2049", ServerName: "example.com", IAM: true},
	}
	for _, s := range bad {
		if s.Validate() == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	a := SpecFor("fs-1", "", "us-east-1", "", "", false)
	b := a
	b.IAM = true
	if a.Key() == b.Key() {
		t.Error("IAM and non-IAM mounts share a tunnel key")
	}
}
