// Package local is the embedded cloud backend: everything EFS and EBS would
// hold lives in one state directory on this machine. File systems are
// directories, access points are directories with an owner and a mode, and
// the metadata that AWS would keep sits in a bbolt database that controller
// and node processes share.
//
// Layout of the state directory:
//
//	state.db            metadata (package store)
//	efs/<fs-id>/        a file system's root
//	ebs/                volumes, snapshots and device links (see ebs.go)
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/store"
)

// DefaultZone is the availability zone of the local machine unless
// Options.Zone says otherwise.
const DefaultZone = "local-1a"

// Options configure a Backend.
type Options struct {
	// Zone is the availability zone this machine pretends to be in.
	Zone string
	// DB is the state database when the caller already opened it (it must
	// be <stateDir>/state.db); nil opens it.
	DB *store.DB
}

// Backend is the local implementation of the EFS and EBS cloud interfaces.
type Backend struct {
	dir  string
	zone string
	db   *store.DB
}

// Open opens (creating when needed) the backend in stateDir and finishes any
// work a crashed process left half done.
func Open(ctx context.Context, stateDir string, opts Options) (*Backend, error) {
	if opts.Zone == "" {
		opts.Zone = DefaultZone
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", stateDir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, "efs"), 0o755); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", abs, err)
	}
	db := opts.DB
	if db == nil {
		if db, err = store.Open(filepath.Join(abs, "state.db")); err != nil {
			return nil, err
		}
	}
	b := &Backend{dir: abs, zone: opts.Zone, db: db}
	if err := b.repair(ctx); err != nil {
		return nil, fmt.Errorf("repair state in %s: %w", abs, err)
	}
	return b, nil
}

// Dir is the state directory.
func (b *Backend) Dir() string { return b.dir }

// DB is the state database, which node-side state shares.
func (b *Backend) DB() *store.DB { return b.db }

// Zone is the availability zone of this machine.
func (b *Backend) Zone() string { return b.zone }

// Ready reports whether the state directory and database are usable.
func (b *Backend) Ready(ctx context.Context) error {
	if err := b.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("local backend: %w: %v", cloud.ErrUnavailable, err)
	}
	f, err := os.CreateTemp(b.dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("local backend: state directory %s is not writable: %w: %v", b.dir, cloud.ErrUnavailable, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// repair completes operations a killed process left between their first
// and last step.
func (b *Backend) repair(ctx context.Context) error {
	if err := b.repairAccessPoints(ctx); err != nil {
		return err
	}
	return b.repairVolumes(ctx)
}

// randomHex returns n random hex digits, for resource IDs.
func randomHex(n int) string {
	buf := make([]byte, (n+1)/2)
	if _, err := rand.Read(buf); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(buf)[:n]
}
