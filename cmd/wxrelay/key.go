package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/wxrelay/wxrelay/store"
)

// secretKey returns the configured secret key or, for SQLite, the key in the
// file beside the database, making that file (mode 0600) on first start.
// With PostgreSQL the key must be given: replicas share no file system.
func secretKey(c *config) ([]byte, error) {
	if c.SecretKey != "" {
		return decodeKey(c.SecretKey)
	}
	dialect, path, err := store.ParseDSN(c.DB)
	if err != nil {
		return nil, err
	}
	if dialect != "sqlite" {
		return nil, errors.New("--secret-key / WXRELAY_SECRET_KEY is required with PostgreSQL (make one with: openssl rand -base64 32)")
	}
	return loadOrCreateKeyFile(path + ".key")
}

// keyExists refuses, unless init, to let admin-token make a new key: a
// token signed with a key the running relay does not hold is refused by
// it (401) with no hint why, which is what running admin-token in another
// directory than the relay's did. With a configured key, or PostgreSQL
// (whose key must be configured), there is nothing to make.
func keyExists(c *config, init bool) error {
	if c.SecretKey != "" || init {
		return nil
	}
	dialect, path, err := store.ParseDSN(c.DB)
	if err != nil || dialect != "sqlite" {
		return nil // secretKey says what is wrong
	}
	if _, err := os.Stat(path + ".key"); err == nil {
		return nil
	}
	abs, _ := filepath.Abs(path)
	return fmt.Errorf("no secret key beside %s (%s.key): admin tokens are signed with the running relay's key, so run admin-token where `wxrelay serve` runs (the same directory, or the same --db / WXRELAY_DB, or WXRELAY_SECRET_KEY); --init makes a new key for a relay not started yet", abs, abs)
}

// loadKeys returns the keys derived from the configured secret key.
func loadKeys(c *config) (keys, error) {
	secret, err := secretKey(c)
	if err != nil {
		return keys{}, err
	}
	return deriveKeys(secret)
}

func loadOrCreateKeyFile(path string) ([]byte, error) {
	for range 2 {
		b, err := os.ReadFile(path)
		if err == nil {
			key, err := decodeKey(string(b))
			if err != nil {
				return nil, fmt.Errorf("key file %s: %w", path, err)
			}
			return key, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read key file: %w", err)
		}
		err = createKeyFile(path)
		if errors.Is(err, fs.ErrExist) {
			continue // another process made it first: read theirs
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("key file %s: could not be read after creation", path)
}

// createKeyFile writes a fresh random key to a temporary file, then links it
// into place: link fails if the file exists, so two processes starting at
// once agree on one key, and no process ever reads a half-written file.
func createKeyFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create key file directory: %w", err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	f, err := os.CreateTemp(dir, ".wxrelay-key-*")
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync() // CreateTemp already made it 0600
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return fmt.Errorf("create key file: %w", err)
	}
	return nil
}
