package ebs

import (
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

func TestParseCreateParams(t *testing.T) {
	tests := []struct {
		name    string
		params  map[string]string
		fsType  string
		sizeGiB int64
		check   func(*testing.T, *createParams, performance)
		wantErr string
	}{
		{name: "defaults", params: nil, sizeGiB: 10, check: func(t *testing.T, p *createParams, perf performance) {
			if p.Type.name != "gp3" || p.FSType != "ext4" || perf != (performance{}) {
				t.Fatalf("%+v %+v", p, perf)
			}
		}},
		{name: "case-insensitive keys", params: map[string]string{"Type": "io2", "IOPSPERGB": "50", "Encrypted": "true", "KmsKeyId": "alias/k"}, sizeGiB: 10,
			check: func(t *testing.T, p *createParams, perf performance) {
				if p.Type.name != "io2" || perf.IOPS != 500 || !p.Encrypted || p.KMSKeyID != "alias/k" {
					t.Fatalf("%+v %+v", p, perf)
				}
			}},
		{name: "gp3 full", params: map[string]string{"type": "gp3", "iops": "16000", "throughput": "1000"}, sizeGiB: 100},
		{name: "gp3 new maximum", params: map[string]string{"type": "gp3", "iops": "80000", "throughput": "2000"}, sizeGiB: 200},
		{name: "iopsPerGB capped", params: map[string]string{"type": "io1", "iopsPerGB": "50"}, sizeGiB: 16000, check: func(t *testing.T, _ *createParams, perf performance) {
			if perf.IOPS != 64000 {
				t.Fatalf("iops %d, want capped at 64000", perf.IOPS)
			}
		}},
		{name: "iopsPerGB raised", params: map[string]string{"type": "io1", "iopsPerGB": "2", "allowAutoIOPSPerGBIncrease": "true"}, sizeGiB: 10, check: func(t *testing.T, _ *createParams, perf performance) {
			if perf.IOPS != 100 {
				t.Fatalf("iops %d, want raised to 100", perf.IOPS)
			}
		}},
		{name: "capability fstype wins", params: map[string]string{"csi.storage.k8s.io/fstype": "ext4"}, fsType: "xfs", sizeGiB: 1, check: func(t *testing.T, p *createParams, _ performance) {
			if p.FSType != "xfs" {
				t.Fatal(p.FSType)
			}
		}},
		{name: "format options", params: map[string]string{"blockSize": "4096", "inodeSize": "512", "bytesPerInode": "8192", "numberOfInodes": "1000", "ext4BigAlloc": "true", "ext4ClusterSize": "16384"}, sizeGiB: 1,
			check: func(t *testing.T, p *createParams, _ performance) {
				got := strings.Join(p.Format.mkfsArgs("ext4"), " ")
				if got != "-b 4096 -I 512 -i 8192 -N 1000 -O bigalloc -C 16384" {
					t.Fatal(got)
				}
				back, _ := formatOptionsFromContext(p.Format.context())
				if back != p.Format {
					t.Fatalf("volume context round trip: %+v vs %+v", back, p.Format)
				}
			}},

		{name: "bad type", params: map[string]string{"type": "gp4"}, wantErr: `type="gp4"`},
		{name: "unknown", params: map[string]string{"colour": "x"}, wantErr: "unknown parameter(s) colour"},
		{name: "iops on gp2", params: map[string]string{"type": "gp2", "iops": "3000"}, sizeGiB: 10, wantErr: "gp2 volumes have no provisioned IOPS"},
		{name: "iops range", params: map[string]string{"type": "gp3", "iops": "90000"}, sizeGiB: 500, wantErr: "iops=90000: gp3 allows 3000 to 80000"},
		{name: "iops ratio", params: map[string]string{"type": "io1", "iops": "1000"}, sizeGiB: 10, wantErr: "at most 50 IOPS per GiB, so 500 for a 10 GiB volume"},
		{name: "io2 needs iops", params: map[string]string{"type": "io2"}, sizeGiB: 10, wantErr: "iops or iopsPerGB is required for io2"},
		{name: "throughput on io1", params: map[string]string{"type": "io1", "iops": "100", "throughput": "200"}, sizeGiB: 10, wantErr: "throughput: io1"},
		{name: "throughput range", params: map[string]string{"throughput": "2500"}, sizeGiB: 10, wantErr: "throughput=2500: gp3 allows 125 to 2000"},
		{name: "throughput per iops", params: map[string]string{"throughput": "1000"}, sizeGiB: 10, wantErr: "0.25 MiB/s per provisioned IOPS"},
		{name: "both iops", params: map[string]string{"iops": "3000", "iopsPerGB": "10"}, wantErr: "set one or the other"},
		{name: "kms without encryption", params: map[string]string{"kmsKeyId": "k"}, wantErr: "needs encrypted"},
		{name: "iopsPerGB too low", params: map[string]string{"type": "io1", "iopsPerGB": "2"}, sizeGiB: 10, wantErr: "allowAutoIOPSPerGBIncrease"},
		{name: "bigalloc on xfs", params: map[string]string{"ext4BigAlloc": "true"}, fsType: "xfs", wantErr: "ext4BigAlloc does not apply to file system type xfs"},
		{name: "cluster without bigalloc", params: map[string]string{"ext4ClusterSize": "16384"}, wantErr: "needs ext4BigAlloc"},
		{name: "odd block size", params: map[string]string{"blockSize": "3000"}, wantErr: "blockSize=3000"},
		{name: "fs type", params: map[string]string{"csi.storage.k8s.io/fstype": "ntfs"}, wantErr: `"ntfs"`},
		{name: "upstream unsupported", params: map[string]string{"outpostArn": "arn"}, wantErr: "outpostArn (an upstream EBS driver parameter) is not supported"},
		{name: "bad tag", params: map[string]string{"tagSpecification_1": "novalue"}, wantErr: "want key=value"},
		{name: "reserved tag", params: map[string]string{"tagSpecification_1": "aws:x=1"}, wantErr: "reserved"},
		{name: "bad template", params: map[string]string{"tagSpecification_1": "k={{ .Nope }}"}, wantErr: "tagSpecification"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseCreateParams(tt.params, tt.fsType)
			var perf performance
			if err == nil {
				perf, err = p.performance(tt.sizeGiB)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, p, perf)
			}
		})
	}
}

func TestTagTemplates(t *testing.T) {
	p, err := parseCreateParams(map[string]string{
		"tagSpecification_1":               "owner={{ .PVCNamespace }}/{{ .PVCName }}",
		"tagSpecification_2":               "team={{ .PVCNamespace | field \"-\" 0 | toUpper }}",
		"csi.storage.k8s.io/pvc/name":      "data-db-0",
		"csi.storage.k8s.io/pvc/namespace": "payments-prod",
		"csi.storage.k8s.io/pv/name":       "pvc-123",
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	tags, err := p.tags("pvc-123")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"owner": "payments-prod/data-db-0", "team": "PAYMENTS", TagVolumeName: "pvc-123", TagCluster: "true",
		TagPVCName: "data-db-0", TagPVCNamespace: "payments-prod", TagPVName: "pvc-123"}
	for k, v := range want {
		if tags[k] != v {
			t.Errorf("tag %s = %q, want %q", k, tags[k], v)
		}
	}
}

func TestSizeAndZone(t *testing.T) {
	r := func(req, lim int64) *csi.CapacityRange {
		return &csi.CapacityRange{RequiredBytes: req, LimitBytes: lim}
	}
	for _, tt := range []struct {
		name  string
		r     *csi.CapacityRange
		typ   string
		snap  int64
		want  int64
		errIn string
	}{
		{"rounds up", r(1, 0), "gp3", 0, 1, ""},
		{"exact", r(5*gib, 0), "gp3", 0, 5, ""},
		{"partial GiB", r(5*gib+1, 0), "gp3", 0, 6, ""},
		{"type minimum", r(1*gib, 0), "st1", 0, 125, ""},
		{"default", r(0, 0), "gp3", 0, 100, ""},
		{"default under limit", r(0, 20*gib), "gp3", 0, 20, ""},
		{"snapshot size", r(1*gib, 0), "gp3", 8, 8, ""},
		{"minimum over limit", r(1*gib, 2*gib), "st1", 0, 0, "st1 volumes start at 125 GiB"},
		{"snapshot over limit", r(1*gib, 2*gib), "gp3", 8, 0, "the snapshot holds 8 GiB"},
		{"type maximum", r(70000*gib, 0), "gp3", 0, 0, "more than gp3 allows"},
	} {
		got, err := sizeGiB(tt.r, volumeTypes[tt.typ], tt.snap)
		if tt.errIn != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errIn) || !strings.Contains(err.Error(), "OutOfRange") {
				t.Errorf("%s: %v, want OutOfRange %q", tt.name, err, tt.errIn)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}

	opts := Options{Name: "ebs.ec2csi.io", Zone: "z-default"}
	topo := func(key, z string) *csi.Topology { return &csi.Topology{Segments: map[string]string{key: z}} }
	for _, tt := range []struct {
		name string
		tr   *csi.TopologyRequirement
		want string
	}{
		{"none", nil, "z-default"},
		{"preferred in requisite", &csi.TopologyRequirement{Requisite: []*csi.Topology{topo(WellKnownZoneKey, "a"), topo(WellKnownZoneKey, "b")}, Preferred: []*csi.Topology{topo(WellKnownZoneKey, "b")}}, "b"},
		{"preferred outside requisite", &csi.TopologyRequirement{Requisite: []*csi.Topology{topo(opts.ZoneKey(), "a")}, Preferred: []*csi.Topology{topo(opts.ZoneKey(), "c")}}, "a"},
		{"own key", &csi.TopologyRequirement{Preferred: []*csi.Topology{topo(opts.ZoneKey(), "c")}}, "c"},
	} {
		if got, err := pickZone(tt.tr, opts); err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
