package efs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strconv"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/csiserver"
)

// Tags the controller puts on the access points it creates.
const (
	// TagCluster is upstream's tag; IAM policies written for the upstream
	// driver condition DeleteAccessPoint on it, so we set it too.
	TagCluster       = "efs.csi.aws.com/cluster"
	TagVolumeName    = "ec2csi.io/volume-name"
	TagRequest       = "ec2csi.io/request"
	TagCapacity      = "ec2csi.io/capacity-bytes"
	TagDeleteRootDir = "ec2csi.io/delete-root-dir"
)

// Controller is the EFS Controller service.
type Controller struct {
	csi.UnimplementedControllerServer
	opts  Options
	cloud Cloud
	files Files
	aps   *accessPointCache
}

// ControllerGetCapabilities lists what the controller implements.
func (c *Controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: csiserver.ControllerCapabilities(
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
	)}, nil
}

// CreateVolume provisions a volume as an access point on an existing file
// system. It is idempotent by name: the access point's client token derives
// from it, and the request's fingerprint is kept in a tag.
func (c *Controller) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	name := req.GetName()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if err := validateCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if req.GetVolumeContentSource() != nil {
		return nil, status.Error(codes.InvalidArgument, "volume_content_source: EFS volumes cannot be created from a snapshot or another volume")
	}
	capacity, err := capacityOf(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	p, err := parseCreateParams(req.GetParameters())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if p.DeleteRootDir && !p.EnableTagging {
		return nil, status.Errorf(codes.InvalidArgument, "parameter %s=true needs %s=true: the choice is stored as a tag on the access point", ParamDeleteAccessPointRootDir, ParamEnableTagging)
	}
	token := clientToken(name)
	if p.ReuseAccessPoint {
		// The PVC name, not the PV name, so another cluster binding a PVC of
		// the same name finds the same access point; hashed exactly as the
		// upstream driver does, so access points it made are found too.
		sum := sha256.Sum256([]byte(p.PVCName))
		token = hex.EncodeToString(sum[:])
	}
	if p.DeleteRootDir && c.files == nil {
		return nil, status.Errorf(codes.InvalidArgument, "parameter %s is not supported on this backend: deleting access point directories needs the controller to mount the file system, which ec2csi does not do on AWS yet", ParamDeleteAccessPointRootDir)
	}
	fingerprint := p.fingerprint(capacity)

	var ap *cloud.AccessPoint
	err = c.aps.withFS(ctx, p.FileSystemID, true, func(st *fsAccessPoints) error {
		if existing := st.byToken[token]; existing != nil {
			ap = existing
			return c.checkExisting(existing, name, p, fingerprint)
		}
		in, err := c.accessPointInput(st, name, token, fingerprint, capacity, p)
		if err != nil {
			return err
		}
		created, err := c.cloud.CreateAccessPoint(ctx, in)
		if err != nil && !definiteRejection(err) {
			// The access point may exist without our knowing (the answer was
			// lost after the retries): its GID must not be handed out again,
			// so the next create lists the file system afresh.
			st.invalidate()
		}
		if errors.Is(err, cloud.ErrParameterMismatch) {
			// An earlier attempt created it but its answer was lost, or
			// another controller did: list again and judge what is there.
			if err := st.reload(ctx, c.cloud, p.FileSystemID); err != nil {
				return err
			}
			if existing := st.byToken[token]; existing != nil {
				ap = existing
				return c.checkExisting(existing, name, p, fingerprint)
			}
		}
		if err != nil {
			return fmt.Errorf("create access point on %s for volume %s: %w", p.FileSystemID, name, err)
		}
		st.add(created)
		ap = created
		return nil
	})
	if errors.Is(err, cloud.ErrNotFound) {
		return nil, status.Errorf(codes.InvalidArgument, "parameter %s=%s: %v", ParamFileSystemID, p.FileSystemID, err)
	}
	if err != nil {
		return nil, err
	}

	volCtx := map[string]string{}
	if p.AZ != "" {
		ip, err := c.mountTargetIn(ctx, p.FileSystemID, p.AZ)
		if err != nil {
			return nil, err
		}
		volCtx[ctxMountTargetIP] = ip
	}
	if n, err := strconv.ParseInt(ap.Tags[TagCapacity], 10, 64); err == nil {
		capacity = n // a reused access point keeps the size it was made with
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      Handle{FileSystemID: ap.FileSystemID, SubPath: "/", AccessPointID: ap.ID}.String(),
		CapacityBytes: capacity,
		VolumeContext: volCtx,
	}}, nil
}

// accessPointInput builds the CreateAccessPoint request, allocating a GID
// when the StorageClass fixes none. Everything in it derives from the
// request, so a retry sends the very same input.
func (c *Controller) accessPointInput(st *fsAccessPoints, name, token, fingerprint string, capacity int64, p *createParams) (cloud.CreateAccessPointInput, error) {
	var uid, gid int64
	if p.UID == nil || p.GID == nil {
		g, err := st.freeGID(p.FileSystemID, p.GIDRangeStart, p.GIDRangeEnd)
		if err != nil {
			return cloud.CreateAccessPointInput{}, err
		}
		uid, gid = g, g
	}
	if p.UID != nil {
		uid = *p.UID
	}
	if p.GID != nil {
		gid = *p.GID
	}
	root, err := p.rootDirectory(name, uniqueSuffix(token))
	if err != nil {
		return cloud.CreateAccessPointInput{}, status.Error(codes.InvalidArgument, err.Error())
	}
	in := cloud.CreateAccessPointInput{
		FileSystemID:  p.FileSystemID,
		ClientToken:   token,
		RootDirectory: root,
		PosixUser:     &cloud.PosixUser{UID: uid, GID: gid},
		CreationInfo:  &cloud.CreationInfo{OwnerUID: uid, OwnerGID: gid, Permissions: p.DirectoryPerms},
	}
	if p.EnableTagging {
		in.Tags = maps.Clone(c.opts.Tags)
		if in.Tags == nil {
			in.Tags = map[string]string{}
		}
		in.Tags[TagCluster] = "true"
		in.Tags[TagVolumeName] = name
		in.Tags[TagRequest] = fingerprint
		in.Tags[TagCapacity] = strconv.FormatInt(capacity, 10)
		if p.DeleteRootDir {
			in.Tags[TagDeleteRootDir] = "true"
		}
	}
	return in, nil
}

// checkExisting decides whether an access point found by client token
// satisfies this request (AlreadyExists otherwise).
func (c *Controller) checkExisting(ap *cloud.AccessPoint, name string, p *createParams, fingerprint string) error {
	if got, ok := ap.Tags[TagRequest]; ok && !p.ReuseAccessPoint {
		if got != fingerprint {
			return status.Errorf(codes.AlreadyExists, "volume %s already exists as access point %s with different parameters or capacity", name, ap.ID)
		}
		return nil
	}
	// Untagged (tagging off, or made by the upstream driver) or reused by
	// PVC name: check what the access point itself says.
	var problems []string
	if ap.FileSystemID != p.FileSystemID {
		problems = append(problems, fmt.Sprintf("it is on file system %s, not %s", ap.FileSystemID, p.FileSystemID))
	}
	if pu := ap.PosixUser; pu != nil {
		if p.UID != nil && pu.UID != *p.UID {
			problems = append(problems, fmt.Sprintf("its uid is %d, not %d", pu.UID, *p.UID))
		}
		if p.GID != nil && pu.GID != *p.GID {
			problems = append(problems, fmt.Sprintf("its gid is %d, not %d", pu.GID, *p.GID))
		}
		if p.GID == nil && (pu.GID < p.GIDRangeStart || pu.GID > p.GIDRangeEnd) {
			problems = append(problems, fmt.Sprintf("its gid %d is outside %d-%d", pu.GID, p.GIDRangeStart, p.GIDRangeEnd))
		}
	}
	if base := strings.TrimSuffix(p.BasePath, "/") + "/"; !strings.HasPrefix(ap.RootDirectory, base) {
		problems = append(problems, fmt.Sprintf("its root %s is not below %s", ap.RootDirectory, p.BasePath))
	}
	if len(problems) > 0 {
		return status.Errorf(codes.AlreadyExists, "volume %s: existing access point %s does not match the request: %s", name, ap.ID, strings.Join(problems, "; "))
	}
	return nil
}

func (c *Controller) mountTargetIn(ctx context.Context, fsID, zone string) (string, error) {
	mts, err := c.cloud.DescribeMountTargets(ctx, fsID)
	if err != nil {
		return "", fmt.Errorf("describe mount targets of %s: %w", fsID, err)
	}
	var zones []string
	for _, mt := range mts {
		if mt.AvailabilityZone == zone {
			return mt.IPAddress, nil
		}
		zones = append(zones, mt.AvailabilityZone)
	}
	sort.Strings(zones)
	return "", status.Errorf(codes.InvalidArgument, "parameter %s=%s: file system %s has no mount target in that zone (it has: %s)", ParamAZ, zone, fsID, strings.Join(zones, ", "))
}

// DeleteVolume deletes a volume's access point. The data below it stays
// unless the StorageClass (or the --delete-access-point-root-dir flag) asked
// for its removal. Volumes without an access point (static ones) and
// volumes that do not exist delete successfully without touching anything.
func (c *Controller) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	h, err := ParseHandle(id)
	if err != nil || h.AccessPointID == "" {
		// Nothing this driver created can have that ID.
		return &csi.DeleteVolumeResponse{}, nil
	}
	err = c.aps.withFS(ctx, h.FileSystemID, false, func(st *fsAccessPoints) error {
		ap := st.byID[h.AccessPointID]
		if ap == nil {
			var err error
			if ap, err = c.cloud.DescribeAccessPoint(ctx, h.AccessPointID); err != nil {
				return err
			}
		}
		if ap.FileSystemID != h.FileSystemID {
			return fmt.Errorf("access point %s belongs to %s, not %s: %w", ap.ID, ap.FileSystemID, h.FileSystemID, cloud.ErrNotFound)
		}
		if c.opts.DeleteAccessPointRootDir || ap.Tags[TagDeleteRootDir] == "true" {
			if err := c.removeRootDir(ctx, st, ap); err != nil {
				return err
			}
		}
		if err := c.cloud.DeleteAccessPoint(ctx, ap.ID); err != nil && !errors.Is(err, cloud.ErrNotFound) {
			return fmt.Errorf("delete access point %s: %w", ap.ID, err)
		}
		st.remove(ap.ID)
		return nil
	})
	if errors.Is(err, cloud.ErrNotFound) {
		return &csi.DeleteVolumeResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (c *Controller) removeRootDir(ctx context.Context, st *fsAccessPoints, ap *cloud.AccessPoint) error {
	if ap.RootDirectory == "" || ap.RootDirectory == "/" {
		slog.WarnContext(ctx, "not deleting the file system root with an access point", "access_point", ap.ID)
		return nil
	}
	// Deleting data is the one place where a stale cache could do harm
	// (an access point made elsewhere on the same directory), so it
	// always lists afresh; it is rare enough to afford the calls.
	if err := st.reload(ctx, c.cloud, ap.FileSystemID); err != nil {
		return err
	}
	if st.sharedRoot(ap.ID, ap.RootDirectory) {
		// Another volume still uses this directory; its data is not ours to delete.
		slog.WarnContext(ctx, "keeping access point root directory: another access point uses it", "access_point", ap.ID, "dir", ap.RootDirectory)
		return nil
	}
	if c.files == nil {
		// Failing here would leave the PV stuck for ever; the access point
		// goes, its data stays, and the log says so.
		slog.WarnContext(ctx, "keeping access point root directory: this backend cannot delete directories", "access_point", ap.ID, "dir", ap.RootDirectory)
		return nil
	}
	if err := c.files.RemoveDirectory(ctx, ap.FileSystemID, ap.RootDirectory); err != nil {
		return fmt.Errorf("delete root directory %s of access point %s: %w", ap.RootDirectory, ap.ID, err)
	}
	return nil
}

// ValidateVolumeCapabilities confirms the capabilities for an existing
// volume. An ID that cannot be an EFS volume is NotFound: no such volume
// exists.
func (c *Controller) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_capabilities: at least one is required")
	}
	h, err := ParseHandle(id)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s does not exist: %v", id, err)
	}
	if _, err := c.cloud.DescribeFileSystem(ctx, h.FileSystemID); err != nil {
		return nil, fmt.Errorf("volume %s: %w", id, err)
	}
	if h.AccessPointID != "" {
		ap, err := c.cloud.DescribeAccessPoint(ctx, h.AccessPointID)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", id, err)
		}
		if ap.FileSystemID != h.FileSystemID {
			return nil, status.Errorf(codes.NotFound, "volume %s: access point %s belongs to %s", id, ap.ID, ap.FileSystemID)
		}
	}
	if err := validateCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// capacityOf picks the size to report: EFS is elastic, so the request is
// recorded, never enforced.
func capacityOf(r *csi.CapacityRange) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, status.Errorf(codes.InvalidArgument, "capacity_range: required_bytes %d and limit_bytes %d must not be negative", req, lim)
	}
	if lim > 0 && req > lim {
		return 0, status.Errorf(codes.InvalidArgument, "capacity_range: required_bytes %d exceeds limit_bytes %d", req, lim)
	}
	if req == 0 {
		return lim, nil
	}
	return req, nil
}

// definiteRejection tells errors after which the access point surely does
// not exist from those (lost answers, deadlines) after which it might.
func definiteRejection(err error) bool {
	for _, e := range []error{cloud.ErrInvalidArgument, cloud.ErrNotFound, cloud.ErrLimitExceeded, cloud.ErrParameterMismatch, cloud.ErrUnauthorized, cloud.ErrAlreadyExists} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// clientToken fits a name into EFS's 64-character client token.
func clientToken(name string) string {
	if len(name) <= 64 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// uniqueSuffix is the UUID-shaped suffix upstream appends to pattern-made
// directories. It derives from the token rather than being random, so a
// retried CreateVolume asks for exactly the same access point.
func uniqueSuffix(token string) string {
	s := sha256.Sum256([]byte("ec2csi-dir:" + token))
	h := hex.EncodeToString(s[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
