// Package publications records, on a node, at which target paths each
// volume is published and how. The record lives in the state database so
// that a restarted node plugin still knows, for example, that a
// SINGLE_NODE_SINGLE_WRITER volume is already in use.
package publications

import (
	"fmt"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/store"
)

// Publication is one volume published at one target.
type Publication struct {
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly"`
	// AccessMode is the CSI access mode's name, e.g. SINGLE_NODE_WRITER.
	AccessMode string `json:"accessMode"`
}

// Store keeps publications in one bucket, keyed volumeID NUL target.
type Store struct {
	db     *store.DB
	bucket string
}

// New returns a store in db's bucket named after the driver.
func New(db *store.DB, driver string) *Store {
	return &Store{db: db, bucket: "publications-" + driver}
}

func key(volumeID, target string) string { return volumeID + "\x00" + target }

// Add records a publication, replacing one at the same target.
func (s *Store) Add(volumeID string, p Publication) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return store.Put(tx, s.bucket, key(volumeID, p.Target), p) })
	if err != nil {
		return fmt.Errorf("record publication of %s at %s: %w", volumeID, p.Target, err)
	}
	return nil
}

// Remove forgets the publication at target; an unknown one is not an error.
func (s *Store) Remove(volumeID, target string) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return store.Delete(tx, s.bucket, key(volumeID, target)) })
	if err != nil {
		return fmt.Errorf("forget publication of %s at %s: %w", volumeID, target, err)
	}
	return nil
}

// List returns the volume's publications.
func (s *Store) List(volumeID string) ([]Publication, error) {
	var out []Publication
	err := s.db.View(func(tx *bolt.Tx) error {
		return store.List(tx, s.bucket, volumeID+"\x00", func(k string, p Publication) error {
			if strings.HasPrefix(k, volumeID+"\x00") {
				out = append(out, p)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list publications of %s: %w", volumeID, err)
	}
	return out, nil
}

// Records is what CheckSingleWriter needs of a Store.
type Records interface {
	Remove(volumeID, target string) error
	List(volumeID string) ([]Publication, error)
}

// CheckSingleWriter refuses a second target for a SINGLE_NODE_SINGLE_WRITER
// volume, whichever of the two publications asked for it. A record whose
// target is no longer mounted (the CO cleaned up without telling us) is
// dropped rather than held against the volume.
func CheckSingleWriter(r Records, isMountPoint func(string) (bool, error), volumeID, target string, mode csi.VolumeCapability_AccessMode_Mode) error {
	pubs, err := r.List(volumeID)
	if err != nil {
		return err
	}
	single := csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
	for _, p := range pubs {
		if p.Target == target || (mode != single && p.AccessMode != single.String()) {
			continue
		}
		if mounted, err := isMountPoint(p.Target); err != nil || !mounted {
			if err := r.Remove(volumeID, p.Target); err != nil {
				return err
			}
			continue
		}
		return status.Errorf(codes.FailedPrecondition, "volume %s is published single-writer at %s; it cannot also be published at %s", volumeID, p.Target, target)
	}
	return nil
}
