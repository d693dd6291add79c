// Package store keeps ec2csi's metadata in one bbolt database under the
// state directory.
//
// Controller and node plugins on one machine may run as separate processes
// over the same state directory, and bbolt allows only one process at a time
// to hold a database open for writing. So a DB holds the file open only for
// the length of one transaction: it takes the file lock, runs the
// transaction, commits (fsync) and closes. Every transaction therefore sees
// what any process committed before it, and a crash at any point leaves the
// last committed state: bbolt's copy-on-write pages are never rewritten in
// place.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lockTimeout bounds how long a transaction waits for another process's
// transaction; transactions are short, so hitting it means a stuck process.
const lockTimeout = 30 * time.Second

// DB is a handle on the metadata database. It is safe for concurrent use by
// goroutines and by processes.
type DB struct {
	path string
	// mu keeps goroutines of this process from queueing on the file lock,
	// which bbolt acquires by polling.
	mu sync.RWMutex
}

// Open returns a DB for the file at path, creating the file and its parent
// directory when missing.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory for %s: %w", path, err)
	}
	d := &DB{path: path}
	// Opening once up front surfaces a corrupt or unreadable file at start-up
	// instead of at the first CSI call.
	if err := d.Update(func(*bolt.Tx) error { return nil }); err != nil {
		return nil, err
	}
	return d, nil
}

// Path is the database file.
func (d *DB) Path() string { return d.path }

// Update runs fn in a read-write transaction and commits it when fn returns
// nil.
func (d *DB) Update(fn func(tx *bolt.Tx) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	db, err := bolt.Open(d.path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return fmt.Errorf("open state database %s: %w", d.path, err)
	}
	txErr := db.Update(fn)
	if err := db.Close(); err != nil && txErr == nil {
		return fmt.Errorf("close state database %s: %w", d.path, err)
	}
	return txErr
}

// View runs fn in a read-only transaction. Readers in several processes
// share the file lock.
func (d *DB) View(fn func(tx *bolt.Tx) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	db, err := bolt.Open(d.path, 0o600, &bolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("open state database %s: %w", d.path, err)
	}
	txErr := db.View(fn)
	if err := db.Close(); err != nil && txErr == nil {
		return fmt.Errorf("close state database %s: %w", d.path, err)
	}
	return txErr
}

// ErrNotFound is returned by Get when the key is absent.
var ErrNotFound = errors.New("not found in state database")

// bucket returns the named bucket, creating it in a writable transaction.
// A read-only transaction on a database that never had the bucket gets nil.
func bucket(tx *bolt.Tx, name string) (*bolt.Bucket, error) {
	if b := tx.Bucket([]byte(name)); b != nil || !tx.Writable() {
		return b, nil
	}
	b, err := tx.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", name, err)
	}
	return b, nil
}

// Get decodes the JSON record at bucket/key into a new T.
func Get[T any](tx *bolt.Tx, bucketName, key string) (T, error) {
	var v T
	b, err := bucket(tx, bucketName)
	if err != nil {
		return v, err
	}
	var raw []byte
	if b != nil {
		raw = b.Get([]byte(key))
	}
	if raw == nil {
		return v, fmt.Errorf("%s/%s: %w", bucketName, key, ErrNotFound)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode %s/%s: %w", bucketName, key, err)
	}
	return v, nil
}

// Put stores v as JSON at bucket/key.
func Put(tx *bolt.Tx, bucketName, key string, v any) error {
	b, err := bucket(tx, bucketName)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucketName, key, err)
	}
	if err := b.Put([]byte(key), raw); err != nil {
		return fmt.Errorf("write %s/%s: %w", bucketName, key, err)
	}
	return nil
}

// Delete removes bucket/key; removing an absent key is not an error.
func Delete(tx *bolt.Tx, bucketName, key string) error {
	b, err := bucket(tx, bucketName)
	if err != nil || b == nil {
		return err
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete %s/%s: %w", bucketName, key, err)
	}
	return nil
}

// List decodes every record of a bucket whose key starts with prefix, in key
// order, and calls fn with each; fn returning an error stops the walk.
func List[T any](tx *bolt.Tx, bucketName, prefix string, fn func(key string, v T) error) error {
	b, err := bucket(tx, bucketName)
	if err != nil || b == nil {
		return err
	}
	c := b.Cursor()
	p := []byte(prefix)
	for k, raw := c.Seek(p); k != nil && hasPrefix(k, p); k, raw = c.Next() {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucketName, k, err)
		}
		if err := fn(string(k), v); err != nil {
			return err
		}
	}
	return nil
}

func hasPrefix(k, p []byte) bool {
	return len(k) >= len(p) && string(k[:len(p)]) == string(p)
}
