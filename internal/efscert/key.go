package efscert

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyFile is the node key's file name inside its directory.
const KeyFile = "privateKey.pem"

// KeyBits is the node key's RSA modulus size, the size EFS clients use.
const KeyBits = 3072

// LoadOrCreateKey returns the node's RSA key from dir/privateKey.pem, making
// it on first use. The key is made once and shared by every certificate,
// since a 3072-bit key takes a noticeable fraction of a second to generate.
// Several processes may race to create it: each writes a private temporary
// file and links it into place, so exactly one key wins and all use it.
func LoadOrCreateKey(dir string) (*rsa.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	key, err := readKey(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errEmptyKey) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key directory %s: %w", dir, err)
	}
	if errors.Is(err, errEmptyKey) {
		// An interrupted writer from an older layout leaves an empty file;
		// ours never does (link is atomic), so replacing it is safe.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove empty key %s: %w", path, err)
		}
	}
	key, err = rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode node key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".privateKey-*.pem")
	if err != nil {
		return nil, fmt.Errorf("create node key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; the explicit chmod guards
	// against a umask or file system that would widen it.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("restrict node key: %w", err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write node key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sync node key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("close node key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process won the race: use its key.
			return readKey(path)
		}
		return nil, fmt.Errorf("install node key %s: %w", path, err)
	}
	return key, nil
}

var errEmptyKey = errors.New("empty key file")

func readKey(path string) (*rsa.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read node key: %w", err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("node key %s: %w", path, errEmptyKey)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("node key %s: no PEM block", path)
	}
	var parsed any
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("node key %s: unexpected PEM type %q", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse node key %s: %w", path, err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("node key %s: not an RSA key", path)
	}
	return key, nil
}
