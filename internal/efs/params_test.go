package efs

import (
	"strings"
	"testing"
)

func TestParseCreateParams(t *testing.T) {
	base := func(kv ...string) map[string]string {
		m := map[string]string{"provisioningMode": "efs-ap", "fileSystemId": "fs-12345678"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		in      map[string]string
		check   func(t *testing.T, p *createParams)
		wantErr string
	}{
		{name: "defaults", in: base(), check: func(t *testing.T, p *createParams) {
			if p.DirectoryPerms != "0700" || p.GIDRangeStart != 50000 || p.GIDRangeEnd != 60000 || !p.EnsureUniqueDirectory || p.UID != nil || p.GID != nil || p.DeleteRootDir {
				t.Fatalf("defaults wrong: %+v", p)
			}
		}},
		{name: "all set", in: base("directoryPerms", "755", "uid", "1000", "gid", "2000", "gidRangeStart", "100", "gidRangeEnd", "200",
			"basePath", "/dyn//x/", "subPathPattern", "${.PVC.namespace}/${.PVC.name}", "ensureUniqueDirectory", "false",
			"reuseAccessPoint", "true", "az", "us-east-1a", "enableTagging", "true", "deleteAccessPointRootDir", "true",
			"csi.storage.k8s.io/pvc/name", "data", "csi.storage.k8s.io/pvc/namespace", "ns", "csi.storage.k8s.io/pv/name", "pvc-1"),
			check: func(t *testing.T, p *createParams) {
				if p.DirectoryPerms != "0755" || *p.UID != 1000 || *p.GID != 2000 || p.BasePath != "/dyn/x" || p.EnsureUniqueDirectory || !p.ReuseAccessPoint || !p.DeleteRootDir || p.AZ != "us-east-1a" {
					t.Fatalf("parsed wrong: %+v", p)
				}
				dir, err := p.rootDirectory("pvc-1", "u")
				if err != nil || dir != "/dyn/x/ns/data" {
					t.Fatalf("root = %q, %v", dir, err)
				}
			}},
		{name: "reserved prefix ignored", in: base("csi.storage.k8s.io/fstype", "nfs")},
		{name: "missing mode", in: map[string]string{"fileSystemId": "fs-12345678"}, wantErr: "provisioningMode is required"},
		{name: "wrong mode", in: base("provisioningMode", "efs-fs"), wantErr: `provisioningMode="efs-fs"`},
		{name: "missing fs", in: map[string]string{"provisioningMode": "efs-ap"}, wantErr: "fileSystemId is required"},
		{name: "bad fs", in: base("fileSystemId", "fs-xyz"), wantErr: `fileSystemId="fs-xyz"`},
		{name: "unknown", in: base("fileSystemID", "x", "colour", "red"), wantErr: "unknown parameter(s) colour, fileSystemID"},
		{name: "upstream unsupported", in: base("awsRoleArn", "arn:x"), wantErr: "awsRoleArn is not supported"},
		{name: "bad perms", in: base("directoryPerms", "999"), wantErr: `directoryPerms="999"`},
		{name: "perms too long", in: base("directoryPerms", "07777"), wantErr: "directoryPerms"},
		{name: "negative uid", in: base("uid", "-1"), wantErr: `uid="-1"`},
		{name: "huge gid", in: base("gid", "4294967296"), wantErr: `gid="4294967296"`},
		{name: "zero range start", in: base("gidRangeStart", "0"), wantErr: "gidRangeStart"},
		{name: "empty range", in: base("gidRangeStart", "10", "gidRangeEnd", "9"), wantErr: "the range is empty"},
		{name: "bool", in: base("ensureUniqueDirectory", "maybe"), wantErr: `ensureUniqueDirectory="maybe": want true or false`},
		{name: "basePath escape", in: base("basePath", "/a/../../b"), wantErr: "basePath"},
		{name: "pattern unknown var", in: base("subPathPattern", "${.PVC.uid}"), wantErr: "unknown variable ${.PVC.uid}"},
		{name: "pattern missing metadata", in: base("subPathPattern", "${.PVC.name}"), wantErr: "--extra-create-metadata"},
		{name: "pattern dotdot", in: base("subPathPattern", "../${.PVC.name}", "csi.storage.k8s.io/pvc/name", "x"), wantErr: "must not contain"},
		{name: "reuse without pvc", in: base("reuseAccessPoint", "true"), wantErr: "--extra-create-metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseCreateParams(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestRootDirectory(t *testing.T) {
	p, _ := parseCreateParams(map[string]string{"provisioningMode": "efs-ap", "fileSystemId": "fs-12345678", "basePath": "/k8s"})
	long := strings.Repeat("n", 128)
	a, err := p.rootDirectory(long, "")
	if err != nil || len(a) != maxRootDirLen || !strings.HasPrefix(a, "/k8s/nnn") {
		t.Fatalf("long name: %q (%d), %v", a, len(a), err)
	}
	b, _ := p.rootDirectory(long[:127]+"m", "")
	if a == b {
		t.Fatalf("two long names shortened to the same directory %q", a)
	}
	short, _ := p.rootDirectory("pvc-1", "")
	if short != "/k8s/pvc-1" {
		t.Fatalf("short = %q", short)
	}
	deep, _ := parseCreateParams(map[string]string{"provisioningMode": "efs-ap", "fileSystemId": "fs-12345678", "basePath": "/a/b/c/d/e"})
	if _, err := deep.rootDirectory("v", ""); err == nil || !strings.Contains(err.Error(), "levels deep") {
		t.Fatalf("deep path: %v", err)
	}
	pat, _ := parseCreateParams(map[string]string{"provisioningMode": "efs-ap", "fileSystemId": "fs-12345678", "subPathPattern": "${.PVC.name}", "csi.storage.k8s.io/pvc/name": "logs"})
	u := uniqueSuffix("pvc-1")
	d, _ := pat.rootDirectory("pvc-1", u)
	if d != "/logs-"+u || uniqueSuffix("pvc-1") != u || uniqueSuffix("pvc-2") == u || len(u) != 36 {
		t.Fatalf("pattern dir %q, suffix %q", d, u)
	}
}

func TestParseMountFlags(t *testing.T) {
	f, err := parseMountFlags([]string{"tls,iam", "nfsvers=4.1", "ro", "accesspoint=fsap-0123456789abcdef0", "noresvport"})
	if err != nil || !f.TLS || !f.IAM || !f.ReadOnly || f.AccessPoint != "fsap-0123456789abcdef0" {
		t.Fatalf("%+v, %v", f, err)
	}
	for _, bad := range []string{"garbage", "nfsvers", "hard=1", "accesspoint=x", "tls,notls", "port=1 2"} {
		if _, err := parseMountFlags([]string{bad}); err == nil || !strings.Contains(err.Error(), "mount option") {
			t.Errorf("parseMountFlags(%q) = %v, want an error naming the option", bad, err)
		}
	}
}
