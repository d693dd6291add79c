package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/store"
)

// Buckets of the EFS state.
const (
	bucketFileSystems = "efs-filesystems"
	// bucketAccessPoints is keyed fsID/apID so one file system's access
	// points list by prefix.
	bucketAccessPoints = "efs-accesspoints"
	// bucketAccessPointFS maps an access point ID to its file system.
	bucketAccessPointFS = "efs-accesspoint-fs"
	// bucketTokens maps fsID/clientToken to an access point ID.
	bucketTokens = "efs-client-tokens"

	// accessPointLimit is EFS's quota of access points per file system.
	accessPointLimit = 10000
	accessPointPage  = 100

	apCreating  = "creating"
	apAvailable = "available"
)

type fileSystemRecord struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
}

type accessPointRecord struct {
	ID            string              `json:"id"`
	FileSystemID  string              `json:"fileSystemId"`
	ClientToken   string              `json:"clientToken"`
	RootDirectory string              `json:"rootDirectory"`
	PosixUser     *cloud.PosixUser    `json:"posixUser,omitempty"`
	CreationInfo  *cloud.CreationInfo `json:"creationInfo,omitempty"`
	Tags          map[string]string   `json:"tags,omitempty"`
	// State is "creating" until the root directory exists; a record left
	// in that state by a crash is completed by the next Open.
	State   string    `json:"state"`
	Created time.Time `json:"created"`
}

func (r accessPointRecord) accessPoint() *cloud.AccessPoint {
	return &cloud.AccessPoint{
		ID: r.ID, FileSystemID: r.FileSystemID, ClientToken: r.ClientToken, RootDirectory: r.RootDirectory,
		PosixUser: r.PosixUser, CreationInfo: r.CreationInfo, Tags: maps.Clone(r.Tags),
	}
}

// fsRoot is where a file system's files live.
func (b *Backend) fsRoot(id string) string { return filepath.Join(b.dir, "efs", id) }

// CreateFileSystem makes a file system with the given ID, or a random one
// when id is empty. Creating an existing ID returns it unchanged.
func (b *Backend) CreateFileSystem(ctx context.Context, id, name string) (*cloud.FileSystem, error) {
	if id == "" {
		id = "fs-" + randomHex(17)
	}
	if !cloud.ValidFileSystemID(id) {
		return nil, fmt.Errorf("file system ID %q: want fs- followed by 8 or 17 lower-case hex digits: %w", id, cloud.ErrInvalidArgument)
	}
	var rec fileSystemRecord
	err := b.db.Update(func(tx *bolt.Tx) error {
		existing, err := store.Get[fileSystemRecord](tx, bucketFileSystems, id)
		if err == nil {
			rec = existing
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		rec = fileSystemRecord{ID: id, Name: name, Created: time.Now().UTC()}
		return store.Put(tx, bucketFileSystems, id, rec)
	})
	if err != nil {
		return nil, fmt.Errorf("create file system %s: %w", id, err)
	}
	// The directory may be missing after a crash between the record and the
	// mkdir, or if someone removed it; recreate it either way.
	if err := os.MkdirAll(b.fsRoot(id), 0o755); err != nil {
		return nil, fmt.Errorf("create file system %s: %w", id, err)
	}
	return b.fileSystem(rec), nil
}

func (b *Backend) fileSystem(r fileSystemRecord) *cloud.FileSystem {
	return &cloud.FileSystem{ID: r.ID, Name: r.Name, CreationTime: r.Created, LifeCycleState: "available"}
}

// DescribeFileSystem returns one file system.
func (b *Backend) DescribeFileSystem(ctx context.Context, id string) (*cloud.FileSystem, error) {
	var rec fileSystemRecord
	err := b.db.View(func(tx *bolt.Tx) (err error) {
		rec, err = store.Get[fileSystemRecord](tx, bucketFileSystems, id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("file system %s: %w", id, cloud.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return b.fileSystem(rec), nil
}

// ListFileSystems returns every file system, ordered by ID.
func (b *Backend) ListFileSystems(ctx context.Context) ([]*cloud.FileSystem, error) {
	var out []*cloud.FileSystem
	err := b.db.View(func(tx *bolt.Tx) error {
		return store.List(tx, bucketFileSystems, "", func(_ string, r fileSystemRecord) error {
			out = append(out, b.fileSystem(r))
			return nil
		})
	})
	return out, err
}

// DescribeMountTargets returns the file system's one mount target, in this
// machine's zone on loopback.
func (b *Backend) DescribeMountTargets(ctx context.Context, fsID string) ([]cloud.MountTarget, error) {
	if _, err := b.DescribeFileSystem(ctx, fsID); err != nil {
		return nil, err
	}
	return []cloud.MountTarget{{
		ID:               "fsmt-" + strings.TrimPrefix(fsID, "fs-"),
		FileSystemID:     fsID,
		AvailabilityZone: b.zone,
		IPAddress:        "127.0.0.1",
	}}, nil
}

// CreateAccessPoint creates an access point and its root directory, owned
// and moded as CreationInfo says. It honours ClientToken as EFS does.
func (b *Backend) CreateAccessPoint(ctx context.Context, in cloud.CreateAccessPointInput) (*cloud.AccessPoint, error) {
	if in.ClientToken == "" {
		return nil, fmt.Errorf("create access point: client token is required: %w", cloud.ErrInvalidArgument)
	}
	if err := validRootDirectory(in.RootDirectory); err != nil {
		return nil, err
	}
	if ci := in.CreationInfo; ci != nil {
		if _, err := parseMode(ci.Permissions); err != nil {
			return nil, err
		}
	}
	want := accessPointRecord{
		FileSystemID: in.FileSystemID, ClientToken: in.ClientToken, RootDirectory: path.Clean(in.RootDirectory),
		PosixUser: in.PosixUser, CreationInfo: in.CreationInfo, Tags: maps.Clone(in.Tags),
	}
	var rec accessPointRecord
	err := b.db.Update(func(tx *bolt.Tx) error {
		if _, err := store.Get[fileSystemRecord](tx, bucketFileSystems, in.FileSystemID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("file system %s: %w", in.FileSystemID, cloud.ErrNotFound)
			}
			return err
		}
		tokenKey := in.FileSystemID + "/" + in.ClientToken
		if id, err := store.Get[string](tx, bucketTokens, tokenKey); err == nil {
			existing, err := store.Get[accessPointRecord](tx, bucketAccessPoints, in.FileSystemID+"/"+id)
			if err != nil {
				return err
			}
			if !sameRequest(existing, want) {
				return fmt.Errorf("client token %q was used for access point %s: %w", in.ClientToken, id, cloud.ErrParameterMismatch)
			}
			rec = existing
			return nil
		}
		n := 0
		if err := store.List(tx, bucketAccessPoints, in.FileSystemID+"/", func(string, accessPointRecord) error { n++; return nil }); err != nil {
			return err
		}
		if n >= accessPointLimit {
			return fmt.Errorf("file system %s has %d access points, the most EFS allows: %w", in.FileSystemID, n, cloud.ErrLimitExceeded)
		}
		rec = want
		rec.ID = "fsap-" + randomHex(17)
		rec.State = apCreating
		rec.Created = time.Now().UTC()
		if err := store.Put(tx, bucketAccessPoints, in.FileSystemID+"/"+rec.ID, rec); err != nil {
			return err
		}
		if err := store.Put(tx, bucketAccessPointFS, rec.ID, in.FileSystemID); err != nil {
			return err
		}
		return store.Put(tx, bucketTokens, tokenKey, rec.ID)
	})
	if err != nil {
		return nil, fmt.Errorf("create access point on %s: %w", in.FileSystemID, err)
	}
	if rec.State == apCreating {
		if err := b.completeAccessPoint(rec); err != nil {
			return nil, err
		}
	}
	return rec.accessPoint(), nil
}

func sameRequest(a, b accessPointRecord) bool {
	eq := func(x, y any) bool { return fmt.Sprint(x) == fmt.Sprint(y) }
	return a.RootDirectory == b.RootDirectory && eq(deref(a.PosixUser), deref(b.PosixUser)) &&
		eq(deref(a.CreationInfo), deref(b.CreationInfo)) && maps.Equal(a.Tags, b.Tags)
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// completeAccessPoint creates the root directory and marks the access point
// available. Both steps are idempotent, so a crash between them is repaired
// by running this again.
func (b *Backend) completeAccessPoint(rec accessPointRecord) error {
	if err := b.makeRootDirectory(rec); err != nil {
		return fmt.Errorf("create root directory %s of access point %s: %w", rec.RootDirectory, rec.ID, err)
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		key := rec.FileSystemID + "/" + rec.ID
		cur, err := store.Get[accessPointRecord](tx, bucketAccessPoints, key)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil || cur.State == apAvailable {
			return err
		}
		cur.State = apAvailable
		return store.Put(tx, bucketAccessPoints, key, cur)
	})
}

// makeRootDirectory creates the access point's root as EFS does: missing
// parents owned by root with mode 0755, the directory itself with
// CreationInfo's owner and mode. An existing directory is left as it is.
func (b *Backend) makeRootDirectory(rec accessPointRecord) error {
	dir := b.fsRoot(rec.FileSystemID)
	elems := strings.Split(strings.Trim(rec.RootDirectory, "/"), "/")
	for i, el := range elems {
		if el == "" {
			continue
		}
		dir = filepath.Join(dir, el)
		fi, err := os.Lstat(dir)
		if err == nil {
			if fi.Mode()&os.ModeSymlink != 0 {
				// A user of the file system could point a symlink anywhere
				// on this machine; never follow it out of the file system.
				return fmt.Errorf("%s is a symbolic link", dir)
			}
			if !fi.IsDir() {
				return fmt.Errorf("%s exists and is not a directory", dir)
			}
			continue
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		last := i == len(elems)-1
		mode, uid, gid := os.FileMode(0o755), 0, 0
		if last && rec.CreationInfo != nil {
			m, _ := parseMode(rec.CreationInfo.Permissions)
			mode, uid, gid = m, int(rec.CreationInfo.OwnerUID), int(rec.CreationInfo.OwnerGID)
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		// Chown before chmod, and chmod explicitly: mkdir's mode is masked
		// by the umask and chown clears set-id bits.
		if err := os.Lchown(dir, uid, gid); err != nil {
			return err
		}
		if err := os.Chmod(dir, mode); err != nil {
			return err
		}
	}
	return nil
}

// repairAccessPoints completes access points a crash left in "creating".
func (b *Backend) repairAccessPoints(ctx context.Context) error {
	var pending []accessPointRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		return store.List(tx, bucketAccessPoints, "", func(_ string, r accessPointRecord) error {
			if r.State == apCreating {
				pending = append(pending, r)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, r := range pending {
		if err := b.completeAccessPoint(r); err != nil {
			return err
		}
	}
	return nil
}

func (b *Backend) accessPointRecord(tx *bolt.Tx, id string) (accessPointRecord, error) {
	fsID, err := store.Get[string](tx, bucketAccessPointFS, id)
	if errors.Is(err, store.ErrNotFound) {
		return accessPointRecord{}, fmt.Errorf("access point %s: %w", id, cloud.ErrNotFound)
	}
	if err != nil {
		return accessPointRecord{}, err
	}
	return store.Get[accessPointRecord](tx, bucketAccessPoints, fsID+"/"+id)
}

// DescribeAccessPoint returns one access point.
func (b *Backend) DescribeAccessPoint(ctx context.Context, id string) (*cloud.AccessPoint, error) {
	var rec accessPointRecord
	err := b.db.View(func(tx *bolt.Tx) (err error) {
		rec, err = b.accessPointRecord(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rec.accessPoint(), nil
}

// ListAccessPoints calls fn with pages of the file system's access points.
func (b *Backend) ListAccessPoints(ctx context.Context, fsID string, fn func([]*cloud.AccessPoint) error) error {
	var all []*cloud.AccessPoint
	err := b.db.View(func(tx *bolt.Tx) error {
		if _, err := store.Get[fileSystemRecord](tx, bucketFileSystems, fsID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("file system %s: %w", fsID, cloud.ErrNotFound)
			}
			return err
		}
		return store.List(tx, bucketAccessPoints, fsID+"/", func(_ string, r accessPointRecord) error {
			all = append(all, r.accessPoint())
			return nil
		})
	})
	if err != nil {
		return err
	}
	// Pages are handed out after the transaction ends, so a slow caller
	// never holds the database.
	for len(all) > 0 {
		n := min(accessPointPage, len(all))
		if err := fn(all[:n]); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

// DeleteAccessPoint deletes an access point. Like EFS, it leaves the root
// directory and its data alone.
func (b *Backend) DeleteAccessPoint(ctx context.Context, id string) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		rec, err := b.accessPointRecord(tx, id)
		if err != nil {
			return err
		}
		if err := store.Delete(tx, bucketAccessPoints, rec.FileSystemID+"/"+id); err != nil {
			return err
		}
		if err := store.Delete(tx, bucketAccessPointFS, id); err != nil {
			return err
		}
		return store.Delete(tx, bucketTokens, rec.FileSystemID+"/"+rec.ClientToken)
	})
}

// RemoveDirectory deletes a directory tree of a file system; the file
// system's root itself is refused. A missing directory is not an error.
func (b *Backend) RemoveDirectory(ctx context.Context, fsID, dir string) error {
	if err := validRootDirectory(dir); err != nil {
		return err
	}
	if path.Clean(dir) == "/" {
		return fmt.Errorf("refusing to delete the root of file system %s: %w", fsID, cloud.ErrInvalidArgument)
	}
	full, err := b.resolve(fsID, dir)
	if errors.Is(err, cloud.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.RemoveAll(full); err != nil {
		return fmt.Errorf("delete %s on file system %s: %w", dir, fsID, err)
	}
	return nil
}

// ResolveDirectory returns the directory on this machine that a volume
// handle names: the file system's root, the access point's root below it,
// then the sub path. Like EFS on mount, a missing access point root is
// created from its CreationInfo. Symbolic links that would lead outside
// the file system are refused.
func (b *Backend) ResolveDirectory(ctx context.Context, fsID, accessPointID, subPath string) (string, error) {
	if _, err := b.DescribeFileSystem(ctx, fsID); err != nil {
		return "", err
	}
	base := "/"
	if accessPointID != "" {
		var rec accessPointRecord
		err := b.db.View(func(tx *bolt.Tx) (err error) {
			rec, err = b.accessPointRecord(tx, accessPointID)
			return err
		})
		if err != nil {
			return "", err
		}
		if rec.FileSystemID != fsID {
			return "", fmt.Errorf("access point %s belongs to %s, not %s: %w", accessPointID, rec.FileSystemID, fsID, cloud.ErrNotFound)
		}
		if err := b.makeRootDirectory(rec); err != nil {
			return "", fmt.Errorf("access point %s: %w", accessPointID, err)
		}
		base = rec.RootDirectory
	}
	return b.resolve(fsID, path.Join(base, subPath))
}

// resolve maps a path of a file system to this machine, following symbolic
// links only as long as they stay inside the file system.
func (b *Backend) resolve(fsID, p string) (string, error) {
	root := b.fsRoot(fsID)
	full := filepath.Join(root, filepath.FromSlash(path.Clean("/"+p)))
	real, err := filepath.EvalSymlinks(full)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("directory %s on file system %s: %w", p, fsID, cloud.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("directory %s on file system %s: %w", p, fsID, err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("file system %s: %w", fsID, err)
	}
	if real != realRoot && !strings.HasPrefix(real, realRoot+string(filepath.Separator)) {
		return "", fmt.Errorf("directory %s on file system %s leads outside the file system through a symbolic link: %w", p, fsID, cloud.ErrInvalidArgument)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s on file system %s is not a directory: %w", p, fsID, cloud.ErrInvalidArgument)
	}
	return real, nil
}

// AccessPointCount counts a file system's access points.
func (b *Backend) AccessPointCount(ctx context.Context, fsID string) (int, error) {
	n := 0
	err := b.ListAccessPoints(ctx, fsID, func(page []*cloud.AccessPoint) error { n += len(page); return nil })
	return n, err
}

func validRootDirectory(dir string) error {
	if !strings.HasPrefix(dir, "/") {
		return fmt.Errorf("root directory %q must be absolute: %w", dir, cloud.ErrInvalidArgument)
	}
	for _, el := range strings.Split(dir, "/") {
		if el == ".." {
			return fmt.Errorf("root directory %q must not contain '..': %w", dir, cloud.ErrInvalidArgument)
		}
	}
	return nil
}

func parseMode(s string) (os.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("permissions %q: want an octal mode: %w", s, cloud.ErrInvalidArgument)
	}
	m := os.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m, nil
}
