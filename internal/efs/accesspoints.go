package efs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/keylock"
)

// accessPointCache knows every access point of the file systems the
// controller provisions on, so that GID allocation and idempotency checks
// cost no API call: it lists a file system once (paged) and then keeps
// itself current on every create and delete. All work on one file system,
// the CreateAccessPoint call included, runs under that file system's lock,
// so two volumes can never be given the same GID.
type accessPointCache struct {
	cloud Cloud
	// ttl bounds how stale the cache may get when something other than this
	// controller creates access points on the same file system.
	ttl   time.Duration
	locks keylock.Locks

	mu  sync.Mutex
	fss map[string]*fsAccessPoints
}

// fsAccessPoints is one file system's access points; guarded by the cache's
// per-file-system lock.
type fsAccessPoints struct {
	loadedAt time.Time
	byID     map[string]*cloud.AccessPoint
	byToken  map[string]*cloud.AccessPoint
	gidUsers map[int64]int
}

const defaultAccessPointCacheTTL = 10 * time.Minute

func newAccessPointCache(c Cloud) *accessPointCache {
	return &accessPointCache{cloud: c, ttl: defaultAccessPointCacheTTL, fss: map[string]*fsAccessPoints{}}
}

// withFS runs fn holding fsID's lock. With load set, the file system's
// access points are listed first unless a fresh listing is cached.
func (a *accessPointCache) withFS(ctx context.Context, fsID string, load bool, fn func(*fsAccessPoints) error) error {
	unlock, err := a.locks.Lock(ctx, fsID)
	if err != nil {
		return fmt.Errorf("wait for other operations on file system %s: %w", fsID, err)
	}
	defer unlock()
	a.mu.Lock()
	st := a.fss[fsID]
	if st == nil {
		st = &fsAccessPoints{}
		a.fss[fsID] = st
	}
	a.mu.Unlock()
	if load && (st.byID == nil || time.Since(st.loadedAt) > a.ttl) {
		if err := st.reload(ctx, a.cloud, fsID); err != nil {
			return err
		}
	}
	return fn(st)
}

func (st *fsAccessPoints) reload(ctx context.Context, c Cloud, fsID string) error {
	fresh := fsAccessPoints{
		loadedAt: time.Now(),
		byID:     map[string]*cloud.AccessPoint{},
		byToken:  map[string]*cloud.AccessPoint{},
		gidUsers: map[int64]int{},
	}
	err := c.ListAccessPoints(ctx, fsID, func(page []*cloud.AccessPoint) error {
		for _, ap := range page {
			fresh.add(ap)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list access points of %s: %w", fsID, err)
	}
	*st = fresh
	return nil
}

func (st *fsAccessPoints) loaded() bool { return st.byID != nil }

// invalidate forgets the listing; the next create lists again.
func (st *fsAccessPoints) invalidate() { *st = fsAccessPoints{} }

func (st *fsAccessPoints) add(ap *cloud.AccessPoint) {
	if !st.loaded() {
		return
	}
	if old := st.byID[ap.ID]; old != nil {
		st.remove(old.ID)
	}
	st.byID[ap.ID] = ap
	if ap.ClientToken != "" {
		st.byToken[ap.ClientToken] = ap
	}
	if ap.PosixUser != nil {
		st.gidUsers[ap.PosixUser.GID]++
	}
}

func (st *fsAccessPoints) remove(id string) {
	if !st.loaded() {
		return
	}
	ap := st.byID[id]
	if ap == nil {
		return
	}
	delete(st.byID, id)
	if st.byToken[ap.ClientToken] == ap {
		delete(st.byToken, ap.ClientToken)
	}
	if ap.PosixUser != nil {
		if st.gidUsers[ap.PosixUser.GID]--; st.gidUsers[ap.PosixUser.GID] <= 0 {
			delete(st.gidUsers, ap.PosixUser.GID)
		}
	}
}

// freeGID returns the lowest GID in [start, end] no access point uses.
func (st *fsAccessPoints) freeGID(fsID string, start, end int64) (int64, error) {
	// Counting the used GIDs inside the range first makes a full range
	// cost O(access points), not O(range).
	inRange := int64(0)
	for gid := range st.gidUsers {
		if gid >= start && gid <= end {
			inRange++
		}
	}
	if inRange > end-start {
		return 0, fmt.Errorf("GID range %d-%d of file system %s is full: all %d GIDs are used by access points; widen %s/%s or delete unused volumes: %w",
			start, end, fsID, end-start+1, ParamGIDRangeStart, ParamGIDRangeEnd, cloud.ErrLimitExceeded)
	}
	for gid := start; gid <= end; gid++ {
		if st.gidUsers[gid] == 0 {
			return gid, nil
		}
	}
	panic("unreachable: a free GID was counted but not found")
}

// sharedRoot reports whether an access point other than id has root dir.
func (st *fsAccessPoints) sharedRoot(id, dir string) bool {
	for _, ap := range st.byID {
		if ap.ID != id && ap.RootDirectory == dir {
			return true
		}
	}
	return false
}
