package efs

import (
	"strings"
	"testing"

	"github.com/ec2csi/ec2csi/internal/cloud"
)

func TestParseHandle(t *testing.T) {
	tests := []struct {
		in      string
		want    Handle
		wantErr string // substring of the error; empty means success
	}{
		{in: "fs-12345678", want: Handle{FileSystemID: "fs-12345678", SubPath: "/"}},
		{in: "fs-0123456789abcdef0", want: Handle{FileSystemID: "fs-0123456789abcdef0", SubPath: "/"}},
		{in: "fs-12345678:/data/a", want: Handle{FileSystemID: "fs-12345678", SubPath: "/data/a"}},
		{in: "fs-12345678:/data//a/", want: Handle{FileSystemID: "fs-12345678", SubPath: "/data/a"}},
		{in: "fs-12345678:", want: Handle{FileSystemID: "fs-12345678", SubPath: "/"}},
		{in: "fs-12345678::fsap-0123456789abcdef0", want: Handle{FileSystemID: "fs-12345678", SubPath: "/", AccessPointID: "fsap-0123456789abcdef0"}},
		{in: "fs-12345678:/sub:fsap-abcd1234", want: Handle{FileSystemID: "fs-12345678", SubPath: "/sub", AccessPointID: "fsap-abcd1234"}},
		{in: "fs-12345678::", want: Handle{FileSystemID: "fs-12345678", SubPath: "/"}},

		{in: "", wantErr: `file system ID ""`},
		{in: "fake-vol-id", wantErr: `"fake-vol-id" is not of the form fs-`},
		{in: "fs-1234567", wantErr: "8 or 17"},
		{in: "fs-123456789", wantErr: "8 or 17"},
		{in: "fs-ABCDEF12", wantErr: "lower-case hex"},
		{in: "fs-12345678:/a/../../etc", wantErr: "'..'"},
		{in: "fs-12345678:/..", wantErr: "'..'"},
		{in: "fs-12345678:relative", wantErr: "must be absolute"},
		{in: "fs-12345678::ap-1234", wantErr: `access point ID "ap-1234"`},
		{in: "fs-12345678::fsap-xyz", wantErr: "access point ID"},
		{in: "fs-12345678:/a:fsap-12345678:extra", wantErr: "4 ':'-separated fields"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseHandle(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseHandle(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.in) {
					t.Fatalf("error %q does not name the handle", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseHandle(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			// Formatting and parsing again gives the same handle.
			again, err := ParseHandle(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip %q -> %q -> %+v, %v", tt.in, got.String(), again, err)
			}
		})
	}
}

func FuzzParseHandle(f *testing.F) {
	for _, s := range []string{"fs-12345678", "fs-12345678:/a/b", "fs-12345678::fsap-12345678", "fs-0123456789abcdef0:/x:fsap-0123456789abcdef0", "fs-1:..", "::", "fs-12345678:/../"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHandle(s)
		if err != nil {
			return
		}
		if !cloud.ValidFileSystemID(h.FileSystemID) {
			t.Fatalf("accepted bad file system ID in %q", s)
		}
		if h.AccessPointID != "" && !cloud.ValidAccessPointID(h.AccessPointID) {
			t.Fatalf("accepted bad access point ID in %q", s)
		}
		if !strings.HasPrefix(h.SubPath, "/") || strings.Contains(h.SubPath+"/", "/../") {
			t.Fatalf("sub path %q escapes in %q", h.SubPath, s)
		}
		again, err := ParseHandle(h.String())
		if err != nil || again != h {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", s, h, h.String(), again, err)
		}
	})
}
