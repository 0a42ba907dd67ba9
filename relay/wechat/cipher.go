package wechat

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
)

const (
	// encodingAESKeyLen is the length of an EncodingAESKey: 43 base64
	// characters, one "=" short of encoding 32 bytes.
	encodingAESKeyLen = 43

	// RandomLen is the length of the random prefix of every plaintext frame.
	RandomLen = 16

	// padBlockSize is the PKCS#7 block size WeChat pads to. It is twice
	// the AES block size, so pads run from 1 to 32 bytes, which generic
	// PKCS#7 helpers (limited to 16) reject.
	padBlockSize = 32

	// lengthLen is the size of the big-endian message length in a frame.
	lengthLen = 4

	// maxMessageLen bounds what Encrypt accepts. It is far above anything
	// WeChat sends and keeps frame arithmetic from overflowing an int on
	// 32-bit platforms.
	maxMessageLen = 1 << 30
)

// Cipher seals and opens the Encrypt values of one mini program (WeChat's
// "safe mode"): AES-256-CBC under the key decoded from the EncodingAESKey,
// with the first 16 key bytes as the IV, over the frame
//
//	random(16) || uint32_be(len(msg)) || msg || appid || PKCS#7 pad to 32
//
// The trailing appid binds a ciphertext to its mini program. The fixed IV is
// WeChat's design; the random prefix is what keeps equal messages from
// producing equal ciphertexts. A Cipher is safe for concurrent use.
type Cipher struct {
	block cipher.Block
	iv    []byte
	appID string
}

// NewCipher returns the Cipher for encodingAESKey, the 43-character key from
// the mini-program console, and appID, the mini program's AppID (wx…). It
// returns ErrInvalidConfig, without echoing the key, if the key is not 43
// characters from [A-Za-z0-9] or the appid is empty.
func NewCipher(encodingAESKey, appID string) (*Cipher, error) {
	if len(encodingAESKey) != encodingAESKeyLen {
		return nil, fmt.Errorf("%w: EncodingAESKey must be %d characters, got %d",
			ErrInvalidConfig, encodingAESKeyLen, len(encodingAESKey))
	}
	for i := 0; i < len(encodingAESKey); i++ {
		if !isAlnum(encodingAESKey[i]) {
			return nil, fmt.Errorf("%w: EncodingAESKey may hold only A-Z, a-z and 0-9 (bad character at position %d)",
				ErrInvalidConfig, i+1)
		}
	}
	if appID == "" {
		return nil, fmt.Errorf("%w: empty appid", ErrInvalidConfig)
	}
	// Not Strict(): real keys, the documented sample among them, leave
	// non-zero bits after the last full byte, and WeChat ignores them.
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil {
		return nil, fmt.Errorf("%w: EncodingAESKey is not base64", ErrInvalidConfig)
	}
	block, err := aes.NewCipher(key) // 32 bytes: AES-256
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &Cipher{block: block, iv: key[:aes.BlockSize:aes.BlockSize], appID: appID}, nil
}

// AppID returns the appid the Cipher seals into, and requires in, every frame.
func (c *Cipher) AppID() string { return c.appID }

// Encrypt seals msg, the inner XML or JSON, and returns the base64 Encrypt
// value. The random prefix is 16 characters from [0-9A-Za-z] drawn from
// crypto/rand, like the prefixes WeChat and its SDKs use. It returns
// ErrTooLarge for a message of 1 GiB or more.
func (c *Cipher) Encrypt(msg []byte) (string, error) {
	return c.EncryptWithRandom(newRandom(), msg)
}

// EncryptWithRandom is Encrypt with a caller-chosen random prefix. Reusing a
// prefix makes equal messages encrypt equally, so use it only for
// reproducible tests and test vectors.
func (c *Cipher) EncryptWithRandom(random [RandomLen]byte, msg []byte) (string, error) {
	if len(msg) >= maxMessageLen {
		return "", fmt.Errorf("%w: %d bytes", ErrTooLarge, len(msg))
	}
	n := RandomLen + lengthLen + len(msg) + len(c.appID)
	pad := padBlockSize - n%padBlockSize
	frame := make([]byte, 0, n+pad)
	frame = append(frame, random[:]...)
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(msg)))
	frame = append(frame, msg...)
	frame = append(frame, c.appID...)
	frame = append(frame, bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(c.block, c.iv).CryptBlocks(frame, frame)
	return base64.StdEncoding.EncodeToString(frame), nil
}

// Decrypt opens an Encrypt value and returns the inner message. It checks
// everything it can and never panics: bad base64, a length that is not a
// positive multiple of the AES block, bad padding or an impossible message
// length are ErrBadCiphertext; a frame sealed for another appid is
// ErrAppIDMismatch, so a push meant for another mini program is rejected.
//
// Decrypt does not authenticate: CBC is malleable. Verify msg_signature
// before decrypting, as [Receiver.Receive] does.
func (c *Cipher) Decrypt(encrypted string) ([]byte, error) {
	ct, err := base64.StdEncoding.DecodeString(encrypted)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCiphertext, err)
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: length %d is not a positive multiple of %d",
			ErrBadCiphertext, len(ct), aes.BlockSize)
	}
	frame := make([]byte, len(ct))
	cipher.NewCBCDecrypter(c.block, c.iv).CryptBlocks(frame, ct)

	pad := int(frame[len(frame)-1])
	if pad < 1 || pad > padBlockSize || pad > len(frame) {
		return nil, fmt.Errorf("%w: bad padding", ErrBadCiphertext)
	}
	for _, b := range frame[len(frame)-pad:] {
		if int(b) != pad {
			return nil, fmt.Errorf("%w: bad padding", ErrBadCiphertext)
		}
	}
	frame = frame[:len(frame)-pad]

	if len(frame) < RandomLen+lengthLen {
		return nil, fmt.Errorf("%w: frame of %d bytes is too short", ErrBadCiphertext, len(frame))
	}
	rest := frame[RandomLen+lengthLen:]
	n := binary.BigEndian.Uint32(frame[RandomLen:])
	if uint64(n) > uint64(len(rest)) {
		return nil, fmt.Errorf("%w: message length %d exceeds the %d bytes left", ErrBadCiphertext, n, len(rest))
	}
	msg, appID := rest[:n:n], rest[n:]
	if string(appID) != c.appID {
		return nil, fmt.Errorf("%w: got %q", ErrAppIDMismatch, truncate(appID, 64))
	}
	return msg, nil
}

const randomAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newRandom returns a frame prefix of 16 characters drawn uniformly from
// randomAlphabet by rejection sampling (about 95 bits of entropy).
func newRandom() [RandomLen]byte {
	const limit = 256 - 256%len(randomAlphabet) // largest multiple of 62 ≤ 256
	var out [RandomLen]byte
	var buf [2 * RandomLen]byte
	for i := 0; i < len(out); {
		rand.Read(buf[:]) // never fails: crypto/rand crashes the program instead
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out[i] = randomAlphabet[int(b)%len(randomAlphabet)]
			if i++; i == len(out) {
				break
			}
		}
	}
	return out
}

func isAlnum(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9'
}

// truncate keeps error details short when they quote attacker-controlled bytes.
func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
