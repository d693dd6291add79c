package efs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/ec2csi/ec2csi/internal/cloud"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// StorageClass parameter names. The upstream EFS CSI driver's names are kept
// so that its StorageClasses work unchanged.
const (
	ParamProvisioningMode         = "provisioningMode"
	ParamFileSystemID             = "fileSystemId"
	ParamDirectoryPerms           = "directoryPerms"
	ParamUID                      = "uid"
	ParamGID                      = "gid"
	ParamGIDRangeStart            = "gidRangeStart"
	ParamGIDRangeEnd              = "gidRangeEnd"
	ParamBasePath                 = "basePath"
	ParamSubPathPattern           = "subPathPattern"
	ParamEnsureUniqueDirectory    = "ensureUniqueDirectory"
	ParamReuseAccessPoint         = "reuseAccessPoint"
	ParamAZ                       = "az"
	ParamEnableTagging            = "enableTagging"
	ParamDeleteAccessPointRootDir = "deleteAccessPointRootDir"

	// Set by the external-provisioner with --extra-create-metadata.
	paramPVCName      = "csi.storage.k8s.io/pvc/name"
	paramPVCNamespace = "csi.storage.k8s.io/pvc/namespace"
	paramPVName       = "csi.storage.k8s.io/pv/name"

	modeAccessPoint = "efs-ap"

	// DefaultGIDRangeStart and DefaultGIDRangeEnd bound the GIDs given to
	// access points when the StorageClass fixes none; the range is as large
	// as EFS's limit of access points per file system.
	DefaultGIDRangeStart = 50000
	DefaultGIDRangeEnd   = 60000
	// DefaultDirectoryPerms is used when the StorageClass sets none. Upstream
	// has no default and fails at the EFS API; owner-only is the safe choice,
	// since every access point gets its own owner.
	DefaultDirectoryPerms = "0700"

	// EFS limits an access point's root directory path to 100 characters
	// and four levels.
	maxRootDirLen   = 100
	maxRootDirDepth = 4
	maxPosixID      = 1<<32 - 1
)

// unsupportedUpstream are upstream parameters ec2csi does not implement; they
// get a specific message rather than "unknown parameter".
var unsupportedUpstream = map[string]string{
	"fileSystemIdConfigRef": "resolve the file system ID yourself and set fileSystemId",
	"fileSystemIdSecretRef": "resolve the file system ID yourself and set fileSystemId",
	"enforceZoneAffinity":   "zone affinity for One Zone file systems is not implemented yet",
	"awsRoleArn":            "cross-account provisioning is not implemented yet",
	"externalId":            "cross-account provisioning is not implemented yet",
	"crossaccount":          "cross-account mounts are not implemented yet",
}

// createParams is a validated CreateVolume request.
type createParams struct {
	FileSystemID   string
	DirectoryPerms string
	// UID and GID are nil when the StorageClass leaves them to the GID
	// allocator.
	UID, GID                   *int64
	GIDRangeStart, GIDRangeEnd int64
	BasePath                   string
	SubPathPattern             string
	EnsureUniqueDirectory      bool
	ReuseAccessPoint           bool
	AZ                         string
	EnableTagging              bool
	DeleteRootDir              bool
	PVCName, PVCNamespace      string
	PVName                     string
}

// parseCreateParams validates StorageClass parameters. Every error names the
// parameter, the value and what is allowed.
func parseCreateParams(params map[string]string) (*createParams, error) {
	p := &createParams{
		DirectoryPerms:        DefaultDirectoryPerms,
		GIDRangeStart:         DefaultGIDRangeStart,
		GIDRangeEnd:           DefaultGIDRangeEnd,
		EnsureUniqueDirectory: true,
		EnableTagging:         true,
		BasePath:              "/",
	}
	var unknown []string
	var err error
	for k, v := range params {
		switch k {
		case ParamProvisioningMode:
			if v != modeAccessPoint {
				return nil, fmt.Errorf("parameter %s=%q: only %q is supported", k, v, modeAccessPoint)
			}
		case ParamFileSystemID:
			if !cloud.ValidFileSystemID(v) {
				return nil, fmt.Errorf("parameter %s=%q: want fs- followed by 8 or 17 lower-case hex digits", k, v)
			}
			p.FileSystemID = v
		case ParamDirectoryPerms:
			p.DirectoryPerms, err = parsePerms(k, v)
		case ParamUID:
			p.UID, err = parsePosixID(k, v)
		case ParamGID:
			p.GID, err = parsePosixID(k, v)
		case ParamGIDRangeStart:
			p.GIDRangeStart, err = parseRangeBound(k, v)
		case ParamGIDRangeEnd:
			p.GIDRangeEnd, err = parseRangeBound(k, v)
		case ParamBasePath:
			p.BasePath, err = parseBasePath(v)
		case ParamSubPathPattern:
			p.SubPathPattern = v
		case ParamEnsureUniqueDirectory:
			p.EnsureUniqueDirectory, err = parseBool(k, v)
		case ParamReuseAccessPoint:
			p.ReuseAccessPoint, err = parseBool(k, v)
		case ParamAZ:
			p.AZ = v
		case ParamEnableTagging:
			p.EnableTagging, err = parseBool(k, v)
		case ParamDeleteAccessPointRootDir:
			p.DeleteRootDir, err = parseBool(k, v)
		case paramPVCName:
			p.PVCName = v
		case paramPVCNamespace:
			p.PVCNamespace = v
		case paramPVName:
			p.PVName = v
		default:
			if why, ok := unsupportedUpstream[k]; ok {
				return nil, fmt.Errorf("parameter %s is not supported by ec2csi: %s", k, why)
			}
			// The CO reserves this prefix for its own keys (secrets, fstype);
			// they are not ours to judge.
			if strings.HasPrefix(k, "csi.storage.k8s.io/") {
				continue
			}
			unknown = append(unknown, k)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown parameter(s) %s; EFS StorageClass parameters are provisioningMode, fileSystemId, directoryPerms, uid, gid, gidRangeStart, gidRangeEnd, basePath, subPathPattern, ensureUniqueDirectory, reuseAccessPoint, az, enableTagging, deleteAccessPointRootDir", strings.Join(unknown, ", "))
	}
	if _, ok := params[ParamProvisioningMode]; !ok {
		return nil, fmt.Errorf("parameter %s is required; set it to %q", ParamProvisioningMode, modeAccessPoint)
	}
	if p.FileSystemID == "" {
		return nil, fmt.Errorf("parameter %s is required", ParamFileSystemID)
	}
	if p.GIDRangeStart > p.GIDRangeEnd {
		return nil, fmt.Errorf("parameters %s=%d and %s=%d: the range is empty (start must not exceed end)", ParamGIDRangeStart, p.GIDRangeStart, ParamGIDRangeEnd, p.GIDRangeEnd)
	}
	if p.ReuseAccessPoint && p.PVCName == "" {
		return nil, fmt.Errorf("parameter %s=true needs the PVC name: run the external-provisioner with --extra-create-metadata", ParamReuseAccessPoint)
	}
	if p.SubPathPattern != "" {
		if _, err := p.expandPattern(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

var patternVarRe = regexp.MustCompile(`\$\{([^}]*)\}`)

// expandPattern fills subPathPattern's ${.PVC.name}, ${.PVC.namespace} and
// ${.PV.name} from the external-provisioner's extra metadata.
func (p *createParams) expandPattern() (string, error) {
	var err error
	out := patternVarRe.ReplaceAllStringFunc(p.SubPathPattern, func(m string) string {
		name := m[2 : len(m)-1]
		var v string
		switch name {
		case ".PVC.name":
			v = p.PVCName
		case ".PVC.namespace":
			v = p.PVCNamespace
		case ".PV.name":
			v = p.PVName
		default:
			if err == nil {
				err = fmt.Errorf("parameter %s=%q: unknown variable ${%s}; use ${.PVC.name}, ${.PVC.namespace} or ${.PV.name}", ParamSubPathPattern, p.SubPathPattern, name)
			}
			return m
		}
		if v == "" && err == nil {
			err = fmt.Errorf("parameter %s=%q: ${%s} has no value; run the external-provisioner with --extra-create-metadata", ParamSubPathPattern, p.SubPathPattern, name)
		}
		return v
	})
	if err != nil {
		return "", err
	}
	if strings.Contains(out, "$") {
		return "", fmt.Errorf("parameter %s=%q: malformed variable; write ${.PVC.name}", ParamSubPathPattern, p.SubPathPattern)
	}
	for _, el := range strings.Split(out, "/") {
		if el == ".." || el == "." {
			return "", fmt.Errorf("parameter %s=%q expands to %q, which must not contain '.' or '..'", ParamSubPathPattern, p.SubPathPattern, out)
		}
	}
	return strings.Trim(out, "/"), nil
}

// rootDirectory is the access point's root: basePath, then the pattern (or
// the volume name), then a unique suffix unless the StorageClass turns it
// off. unique is the suffix to use, so a retried call can pass the same one.
func (p *createParams) rootDirectory(volumeName, unique string) (string, error) {
	leaf := volumeName
	if p.SubPathPattern == "" {
		// Volume names may be up to 128 characters, EFS roots only 100:
		// shorten a long name and keep it unique with a hash of the whole.
		if room := maxRootDirLen - len(path.Join("/", p.BasePath, "x")) + 1; len(leaf) > room && room > 10 {
			sum := sha256.Sum256([]byte(volumeName))
			leaf = leaf[:room-9] + "-" + hex.EncodeToString(sum[:4])
		}
	} else {
		exp, err := p.expandPattern()
		if err != nil {
			return "", err
		}
		leaf = exp
		if p.EnsureUniqueDirectory {
			leaf += "-" + unique
		}
	}
	dir := path.Join("/", p.BasePath, leaf)
	if len(dir) > maxRootDirLen {
		return "", fmt.Errorf("access point root directory %q is %d characters; EFS allows %d (shorten %s or %s)", dir, len(dir), maxRootDirLen, ParamBasePath, ParamSubPathPattern)
	}
	if depth := strings.Count(dir, "/"); depth > maxRootDirDepth+1 {
		return "", fmt.Errorf("access point root directory %q is %d levels deep; EFS allows %d below the root plus the volume's own directory", dir, depth, maxRootDirDepth)
	}
	return dir, nil
}

// fingerprint identifies the request, so a repeated CreateVolume with the
// same name can be told apart from a conflicting one. The unique directory
// suffix is left out: it is chosen per attempt.
func (p *createParams) fingerprint(capacity int64) string {
	var b strings.Builder
	opt := func(v *int64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatInt(*v, 10)
	}
	fmt.Fprintf(&b, "fs=%s perms=%s uid=%s gid=%s range=%d-%d base=%s pattern=%s unique=%t reuse=%t az=%s tags=%t delete=%t pvc=%s/%s pv=%s cap=%d",
		p.FileSystemID, p.DirectoryPerms, opt(p.UID), opt(p.GID), p.GIDRangeStart, p.GIDRangeEnd, p.BasePath,
		p.SubPathPattern, p.EnsureUniqueDirectory, p.ReuseAccessPoint, p.AZ, p.EnableTagging, p.DeleteRootDir,
		p.PVCNamespace, p.PVCName, p.PVName, capacity)
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:12])
}

func parsePerms(k, v string) (string, error) {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || len(v) < 3 || len(v) > 4 || n > 0o7777 {
		return "", fmt.Errorf("parameter %s=%q: want an octal mode of 3 or 4 digits, e.g. 700 or 0755", k, v)
	}
	return fmt.Sprintf("%04o", n), nil
}

func parsePosixID(k, v string) (*int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > maxPosixID {
		return nil, fmt.Errorf("parameter %s=%q: want an integer from 0 to %d", k, v, int64(maxPosixID))
	}
	return &n, nil
}

func parseRangeBound(k, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > maxPosixID {
		return 0, fmt.Errorf("parameter %s=%q: want an integer from 1 to %d", k, v, int64(maxPosixID))
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

func parseBasePath(v string) (string, error) {
	for _, el := range strings.Split(v, "/") {
		if el == ".." {
			return "", fmt.Errorf("parameter %s=%q must not contain '..'", ParamBasePath, v)
		}
	}
	return path.Join("/", v), nil
}
