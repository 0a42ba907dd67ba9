package store

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
)

// A sealed value is a format byte followed by AES-256-GCM output:
//
//	format (1) | nonce (12) | ciphertext | tag (16)
//
// The format byte lets a later release change the layout, or add key ids
// for key rotation, and still read what is stored today. It is covered by
// the tag, like the value's place: the additional data names the column and
// the row, so a sealed value copied into another column or another tenant's
// row fails to open instead of handing one tenant's secrets to another.
//
// Nonces are random. With 96 bits, a key may seal about 2^32 values before
// a repeated nonce becomes a risk worth counting, far beyond what tenant
// changes produce.
const sealFormatV1 byte = 1

// SealKeySize is the length of Config.SealKey: an AES-256 key.
const SealKeySize = 32

var (
	// errSealOpen is the one error for a value that fails authentication, so
	// that a caller learns nothing about why, and the plaintext never shows.
	errSealOpen   = errors.New("store: sealed value does not open: wrong seal key, or the value was altered or moved from another row")
	errSealFormat = errors.New("store: sealed value has an unknown format")
)

// sealer encrypts secrets for storage and decrypts them on the way out.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != SealKeySize {
		// Never the key itself, nor any part of it.
		return nil, fmt.Errorf("store: seal key is %d bytes, want %d", len(key), SealKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("store: seal key: %w", err)
	}
	// The random-nonce mode draws and prepends the nonce itself.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("store: seal key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// errNoSealKey is returned by a DB opened without a seal key (to migrate).
var errNoSealKey = errors.New("store: opened without a seal key: secrets cannot be read or written")

// seal encrypts plaintext for storage in column (table.column) of the row
// with primary key rowID.
func (s *sealer) seal(plaintext []byte, column, rowID string) []byte {
	dst := make([]byte, 1, 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	dst[0] = sealFormatV1
	return s.aead.Seal(dst, nil, plaintext, sealContext(sealFormatV1, column, rowID))
}

// open decrypts a value sealed for column of row rowID. It fails with
// errSealOpen if the key is wrong or the value was changed or moved.
func (s *sealer) open(sealed []byte, column, rowID string) ([]byte, error) {
	if len(sealed) == 0 || sealed[0] != sealFormatV1 {
		return nil, errSealFormat
	}
	if len(sealed) < 1+s.aead.NonceSize()+s.aead.Overhead() {
		return nil, errSealOpen
	}
	plaintext, err := s.aead.Open(nil, nil, sealed[1:], sealContext(sealed[0], column, rowID))
	if err != nil {
		return nil, errSealOpen
	}
	return plaintext, nil
}

// sealContext is the additional data that binds a sealed value to its
// format and its place. Column names hold no NUL byte and the row id comes
// last, so distinct places never produce the same bytes.
func sealContext(format byte, column, rowID string) []byte {
	ad := make([]byte, 0, 2+len(column)+len(rowID))
	ad = append(ad, format)
	ad = append(ad, column...)
	ad = append(ad, 0)
	return append(ad, rowID...)
}
