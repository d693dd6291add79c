package ebs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// StorageClass parameter names as upstream spells them in its docs. Keys
// are matched case-insensitively, as upstream does, so "iopsPerGB" and
// "iopspergb" both work.
const (
	ParamType                       = "type"
	ParamIOPS                       = "iops"
	ParamIOPSPerGB                  = "iopsPerGB"
	ParamAllowAutoIOPSPerGBIncrease = "allowAutoIOPSPerGBIncrease"
	ParamThroughput                 = "throughput"
	ParamEncrypted                  = "encrypted"
	ParamKMSKeyID                   = "kmsKeyId"
	ParamBlockExpress               = "blockExpress"
	ParamFSType                     = "csi.storage.k8s.io/fstype"
	ParamBlockSize                  = "blockSize"
	ParamInodeSize                  = "inodeSize"
	ParamBytesPerInode              = "bytesPerInode"
	ParamNumberOfInodes             = "numberOfInodes"
	ParamExt4BigAlloc               = "ext4BigAlloc"
	ParamExt4ClusterSize            = "ext4ClusterSize"
	ParamExt4EncryptionSupport      = "ext4EncryptionSupport"
	paramTagPrefix                  = "tagspecification"

	paramPVCName      = "csi.storage.k8s.io/pvc/name"
	paramPVCNamespace = "csi.storage.k8s.io/pvc/namespace"
	paramPVName       = "csi.storage.k8s.io/pv/name"

	defaultFSType = "ext4"
)

// Tags the controller sets on every volume. The first two are upstream's:
// its IAM policies condition on the cluster tag and it finds volumes by
// name with the other, so keeping them lets ec2csi take over its volumes.
const (
	TagVolumeName   = "CSIVolumeName"
	TagCluster      = "ebs.csi.aws.com/cluster"
	TagPVCName      = "kubernetes.io/created-for/pvc/name"
	TagPVCNamespace = "kubernetes.io/created-for/pvc/namespace"
	TagPVName       = "kubernetes.io/created-for/pv/name"
	TagSnapshotName = "CSIVolumeSnapshotName"
)

var supportedFSTypes = map[string]bool{"ext4": true, "ext3": true, "xfs": true, "btrfs": true}

// formatOptions tune mkfs; they travel to the node in the volume context
// under upstream's lower-case keys.
type formatOptions struct {
	BlockSize, InodeSize, BytesPerInode, NumberOfInodes int64
	BigAlloc                                            bool
	ClusterSize                                         int64
	EncryptionSupport                                   bool
}

type createParams struct {
	Type                       volumeType
	IOPS, IOPSPerGiB           int64
	AllowAutoIOPSPerGBIncrease bool
	Throughput                 int64
	Encrypted                  bool
	KMSKeyID                   string
	FSType                     string
	Format                     formatOptions
	// tagTemplates are the tagSpecification_N values, expanded by tags().
	tagTemplates          []string
	PVCName, PVCNamespace string
	PVName                string
}

// parseCreateParams validates StorageClass parameters; fsType is the one
// from the volume capability, which wins over the parameter.
func parseCreateParams(params map[string]string, fsType string) (*createParams, error) {
	p := &createParams{Type: volumeTypes[defaultVolumeType]}
	var unknown []string
	var err error
	var paramFSType string
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys) // errors and tag order must not depend on map order
	for _, k := range keys {
		v := params[k]
		switch strings.ToLower(k) {
		case "type":
			t, ok := volumeTypes[strings.ToLower(v)]
			if !ok {
				return nil, fmt.Errorf("parameter %s=%q: choose gp3, gp2, io1, io2, st1, sc1 or standard", k, v)
			}
			p.Type = t
		case "iops":
			p.IOPS, err = parsePositive(k, v)
		case "iopspergb":
			p.IOPSPerGiB, err = parsePositive(k, v)
		case "allowautoiopspergbincrease":
			p.AllowAutoIOPSPerGBIncrease, err = parseBool(k, v)
		case "throughput":
			p.Throughput, err = parsePositive(k, v)
		case "encrypted":
			p.Encrypted, err = parseBool(k, v)
		case "kmskeyid":
			p.KMSKeyID = v
		case "blockexpress":
			// Deprecated upstream: every io2 volume is Block Express now.
			_, err = parseBool(k, v)
		case "csi.storage.k8s.io/fstype":
			paramFSType = strings.ToLower(v)
		case "blocksize":
			p.Format.BlockSize, err = parsePositive(k, v)
		case "inodesize":
			p.Format.InodeSize, err = parsePositive(k, v)
		case "bytesperinode":
			p.Format.BytesPerInode, err = parsePositive(k, v)
		case "numberofinodes":
			p.Format.NumberOfInodes, err = parsePositive(k, v)
		case "ext4bigalloc":
			p.Format.BigAlloc, err = parseBool(k, v)
		case "ext4clustersize":
			p.Format.ClusterSize, err = parsePositive(k, v)
		case "ext4encryptionsupport":
			p.Format.EncryptionSupport, err = parseBool(k, v)
		case paramPVCName:
			p.PVCName = v
		case paramPVCNamespace:
			p.PVCNamespace = v
		case paramPVName:
			p.PVName = v
		default:
			lk := strings.ToLower(k)
			switch {
			case strings.HasPrefix(lk, paramTagPrefix):
				p.tagTemplates = append(p.tagTemplates, v)
			case lk == "outpostarn" || lk == "volumeinitializationrate" || lk == "allowautoiopsincreaseonmodify" || lk == "blockattachuntilinitialized":
				return nil, fmt.Errorf("parameter %s (an upstream EBS driver parameter) is not supported by ec2csi", k)
			case strings.HasPrefix(lk, "csi.storage.k8s.io/"):
				// The CO's own keys (secrets, snapshot metadata).
			default:
				unknown = append(unknown, k)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown parameter(s) %s; EBS StorageClass parameters are type, iops, iopsPerGB, allowAutoIOPSPerGBIncrease, throughput, encrypted, kmsKeyId, blockExpress, tagSpecification_N, csi.storage.k8s.io/fstype, blockSize, inodeSize, bytesPerInode, numberOfInodes, ext4BigAlloc, ext4ClusterSize, ext4EncryptionSupport", strings.Join(unknown, ", "))
	}
	if p.IOPS != 0 && p.IOPSPerGiB != 0 {
		return nil, fmt.Errorf("parameters iops=%d and iopsPerGB=%d: set one or the other", p.IOPS, p.IOPSPerGiB)
	}
	if p.KMSKeyID != "" && !p.Encrypted {
		return nil, fmt.Errorf("parameter kmsKeyId=%q needs encrypted: \"true\"", p.KMSKeyID)
	}
	p.FSType = strings.ToLower(fsType)
	if p.FSType == "" {
		p.FSType = paramFSType
	}
	if p.FSType == "" {
		p.FSType = defaultFSType
	}
	if !supportedFSTypes[p.FSType] {
		return nil, fmt.Errorf("file system type %q: choose ext4, ext3, xfs or btrfs", p.FSType)
	}
	if err := p.Format.check(p.FSType); err != nil {
		return nil, err
	}
	if _, err := p.tags("probe"); err != nil {
		return nil, err
	}
	return p, nil
}

// performance turns IOPS/iopsPerGB and throughput into what to provision
// for sizeGiB, and validates it against the type's limits.
func (p *createParams) performance(sizeGiB int64) (performance, error) {
	perf := performance{IOPS: p.IOPS, Throughput: p.Throughput}
	if p.IOPSPerGiB != 0 {
		iops, err := p.Type.iopsFromPerGiB(p.IOPSPerGiB, sizeGiB, p.AllowAutoIOPSPerGBIncrease)
		if err != nil {
			return perf, err
		}
		perf.IOPS = iops
	}
	return perf, p.Type.checkPerformance(sizeGiB, perf)
}

// tagFuncs are the template functions upstream offers in tag values.
var tagFuncs = template.FuncMap{
	"contains":  strings.Contains,
	"toUpper":   strings.ToUpper,
	"toLower":   strings.ToLower,
	"substring": func(start, end int, s string) string { return s[max(0, min(start, len(s))):max(0, min(end, len(s)))] },
	"field": func(sep string, i int, s string) string {
		f := strings.Split(s, sep)
		if i < 0 || i >= len(f) {
			return ""
		}
		return f[i]
	},
	"index":     func(sub, s string) int { return strings.Index(s, sub) },
	"lastIndex": func(sub, s string) int { return strings.LastIndex(s, sub) },
}

// tags returns the volume's tags: ours, then the StorageClass's
// tagSpecification_N, expanded with {{ .PVCName }}, {{ .PVCNamespace }}
// and {{ .PVName }}.
func (p *createParams) tags(volumeName string) (map[string]string, error) {
	tags := map[string]string{TagVolumeName: volumeName, TagCluster: "true"}
	for k, v := range map[string]string{TagPVCName: p.PVCName, TagPVCNamespace: p.PVCNamespace, TagPVName: p.PVName} {
		if v != "" {
			tags[k] = v
		}
	}
	data := struct{ PVCName, PVCNamespace, PVName string }{p.PVCName, p.PVCNamespace, p.PVName}
	for _, spec := range p.tagTemplates {
		k, v, ok := strings.Cut(spec, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("parameter tagSpecification %q: want key=value", spec)
		}
		t, err := template.New("tag").Funcs(tagFuncs).Option("missingkey=error").Parse(v)
		if err != nil {
			return nil, fmt.Errorf("parameter tagSpecification %q: %v", spec, err)
		}
		var b strings.Builder
		if err := t.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("parameter tagSpecification %q: %v", spec, err)
		}
		if err := validTag(k, b.String()); err != nil {
			return nil, fmt.Errorf("parameter tagSpecification %q: %v", spec, err)
		}
		tags[k] = b.String()
	}
	return tags, nil
}

func validTag(k, v string) error {
	switch {
	case len(k) > 128:
		return fmt.Errorf("tag key is %d characters; EC2 allows 128", len(k))
	case len(v) > 256:
		return fmt.Errorf("tag value is %d characters; EC2 allows 256", len(v))
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		return fmt.Errorf("tag keys starting with aws: are reserved by AWS")
	}
	return nil
}

// check validates the format options against the file system they are
// for; the error names the parameter.
func (f formatOptions) check(fsType string) error {
	type opt struct {
		name string
		set  bool
		ok   bool
	}
	ext := fsType == "ext4" || fsType == "ext3"
	for _, o := range []opt{
		{ParamBlockSize, f.BlockSize != 0, ext || fsType == "xfs"},
		{ParamInodeSize, f.InodeSize != 0, ext || fsType == "xfs"},
		{ParamBytesPerInode, f.BytesPerInode != 0, ext},
		{ParamNumberOfInodes, f.NumberOfInodes != 0, ext},
		{ParamExt4BigAlloc, f.BigAlloc, fsType == "ext4"},
		{ParamExt4ClusterSize, f.ClusterSize != 0, fsType == "ext4"},
		{ParamExt4EncryptionSupport, f.EncryptionSupport, fsType == "ext4"},
	} {
		if o.set && !o.ok {
			return fmt.Errorf("parameter %s does not apply to file system type %s", o.name, fsType)
		}
	}
	if f.ClusterSize != 0 && !f.BigAlloc {
		return fmt.Errorf("parameter %s needs %s: \"true\"", ParamExt4ClusterSize, ParamExt4BigAlloc)
	}
	if b := f.BlockSize; b != 0 {
		lo := int64(1024)
		if fsType == "xfs" {
			lo = 512
		}
		if b < lo || b > 65536 || b&(b-1) != 0 {
			return fmt.Errorf("parameter %s=%d: want a power of two from %d to 65536", ParamBlockSize, b, lo)
		}
	}
	if i := f.InodeSize; i != 0 {
		lo, hi := int64(128), int64(65536)
		if fsType == "xfs" {
			lo, hi = 256, 2048
		}
		if i < lo || i > hi || i&(i-1) != 0 {
			return fmt.Errorf("parameter %s=%d: want a power of two from %d to %d", ParamInodeSize, i, lo, hi)
		}
	}
	if b := f.BytesPerInode; b != 0 && (b < 1024 || b > 67108864) {
		return fmt.Errorf("parameter %s=%d: want 1024 to 67108864", ParamBytesPerInode, b)
	}
	return nil
}

// context encodes the options for the volume context, with upstream's keys.
func (f formatOptions) context() map[string]string {
	m := map[string]string{}
	put := func(k string, v int64) {
		if v != 0 {
			m[k] = strconv.FormatInt(v, 10)
		}
	}
	put("blocksize", f.BlockSize)
	put("inodesize", f.InodeSize)
	put("bytesperinode", f.BytesPerInode)
	put("numberofinodes", f.NumberOfInodes)
	put("ext4clustersize", f.ClusterSize)
	if f.BigAlloc {
		m["ext4bigalloc"] = "true"
	}
	if f.EncryptionSupport {
		m["ext4encryptionsupport"] = "true"
	}
	return m
}

// formatOptionsFromContext reads what context() wrote, also from PVs the
// upstream driver made.
func formatOptionsFromContext(vc map[string]string) (formatOptions, error) {
	var f formatOptions
	var err error
	for k, v := range vc {
		switch strings.ToLower(k) {
		case "blocksize":
			f.BlockSize, err = parsePositive(k, v)
		case "inodesize":
			f.InodeSize, err = parsePositive(k, v)
		case "bytesperinode":
			f.BytesPerInode, err = parsePositive(k, v)
		case "numberofinodes":
			f.NumberOfInodes, err = parsePositive(k, v)
		case "ext4clustersize":
			f.ClusterSize, err = parsePositive(k, v)
		case "ext4bigalloc":
			f.BigAlloc, err = parseBool(k, v)
		case "ext4encryptionsupport":
			f.EncryptionSupport, err = parseBool(k, v)
		}
		if err != nil {
			return f, fmt.Errorf("volume context %w", err)
		}
	}
	return f, nil
}

// mkfsArgs are the options to pass to mkfs for fsType.
func (f formatOptions) mkfsArgs(fsType string) []string {
	var a []string
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	switch fsType {
	case "ext4", "ext3":
		if f.BlockSize != 0 {
			a = append(a, "-b", n(f.BlockSize))
		}
		if f.InodeSize != 0 {
			a = append(a, "-I", n(f.InodeSize))
		}
		if f.BytesPerInode != 0 {
			a = append(a, "-i", n(f.BytesPerInode))
		}
		if f.NumberOfInodes != 0 {
			a = append(a, "-N", n(f.NumberOfInodes))
		}
		if f.BigAlloc {
			a = append(a, "-O", "bigalloc")
		}
		if f.ClusterSize != 0 {
			a = append(a, "-C", n(f.ClusterSize))
		}
		if f.EncryptionSupport {
			a = append(a, "-O", "encrypt")
		}
	case "xfs":
		if f.BlockSize != 0 {
			a = append(a, "-b", "size="+n(f.BlockSize))
		}
		if f.InodeSize != 0 {
			a = append(a, "-i", "size="+n(f.InodeSize))
		}
	}
	return a
}

func parsePositive(k, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("parameter %s=%q: want a positive integer", k, v)
	}
	return n, nil
}

func parseBool(k, v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("parameter %s=%q: want true or false", k, v)
	}
	return b, nil
}
