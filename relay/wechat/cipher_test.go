package wechat

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
)

func TestNewCipher(t *testing.T) {
	for _, tt := range []struct {
		name, key, appID string
		wantErr          error
	}{
		{"sample key with trailing bits", v1Key, v1AppID, nil},
		{"all A", oKey, oAppID, nil},
		{"42 characters", oKey[:42], oAppID, ErrInvalidConfig},
		{"44 characters", oKey + "A", oAppID, ErrInvalidConfig},
		{"base64 padding", oKey[:42] + "=", oAppID, ErrInvalidConfig},
		{"plus sign", oKey[:42] + "+", oAppID, ErrInvalidConfig},
		{"slash", "/" + oKey[1:], oAppID, ErrInvalidConfig},
		{"non-ASCII", "é" + oKey[2:], oAppID, ErrInvalidConfig},
		{"empty key", "", oAppID, ErrInvalidConfig},
		{"empty appid", oKey, "", ErrInvalidConfig},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCipher(tt.key, tt.appID)
			wantErr(t, "NewCipher", err, tt.wantErr)
			if err != nil {
				if strings.Contains(err.Error(), tt.key) && tt.key != "" {
					t.Errorf("error %q echoes the key", err)
				}
				return
			}
			if c.AppID() != tt.appID {
				t.Errorf("AppID() = %q, want %q", c.AppID(), tt.appID)
			}
		})
	}
}

func TestCipherRoundTrip(t *testing.T) {
	c := mustCipher(t, v1Key, v1AppID)
	// Lengths around the 32-byte padding boundary: the frame is 16+4+len+18
	// bytes, so len 26 fills a block exactly and takes a full block of pad.
	for _, n := range []int{0, 1, 25, 26, 27, 58, 100, 4096} {
		msg := bytes.Repeat([]byte{'x'}, n)
		enc, err := c.Encrypt(msg)
		wantErr(t, "Encrypt", err, nil)
		ct, _ := base64.StdEncoding.DecodeString(enc)
		if len(ct)%32 != 0 {
			t.Errorf("len %d: ciphertext of %d bytes is not a multiple of 32", n, len(ct))
		}
		got, err := c.Decrypt(enc)
		wantErr(t, "Decrypt", err, nil)
		if !bytes.Equal(got, msg) {
			t.Errorf("len %d: Decrypt(Encrypt(msg)) = %q", n, got)
		}
	}
}

func TestEncryptUsesFreshAlphanumericPrefix(t *testing.T) {
	c := mustCipher(t, oKey, oAppID)
	a, _ := c.Encrypt([]byte("same"))
	b, _ := c.Encrypt([]byte("same"))
	if a == b {
		t.Error("two encryptions of the same message are equal")
	}
	frame := rawDecrypt(t, c, a)
	for _, ch := range frame[:RandomLen] {
		if !isAlnum(ch) {
			t.Fatalf("random prefix %q is not alphanumeric", frame[:RandomLen])
		}
	}
}

func TestDecryptRejectsTampering(t *testing.T) {
	c := mustCipher(t, v1Key, v1AppID)
	good := v1Encrypt
	raw, _ := base64.StdEncoding.DecodeString(good)

	// seal builds a ciphertext from a chosen frame, padding included, to
	// reach the checks after decryption. Frames are 16 + 4 + len(body) + pad
	// bytes; the appid is 18.
	seal := func(frame []byte) string {
		ct := make([]byte, len(frame))
		cipher.NewCBCEncrypter(c.block, c.iv).CryptBlocks(ct, frame)
		return base64.StdEncoding.EncodeToString(ct)
	}
	frameWith := func(msgLen uint32, body string, pad int, padByte byte) []byte {
		f := append(bytes.Repeat([]byte{'r'}, RandomLen), binary.BigEndian.AppendUint32(nil, msgLen)...)
		f = append(f, body...)
		return append(f, bytes.Repeat([]byte{padByte}, pad)...)
	}

	for _, tt := range []struct {
		name    string
		enc     string
		wantErr error
	}{
		{"intact", good, nil},
		{"bad base64", "not base64!", ErrBadCiphertext},
		{"empty", "", ErrBadCiphertext},
		{"truncated to 40 bytes", base64.StdEncoding.EncodeToString(raw[:40]), ErrBadCiphertext},
		{"one block short", base64.StdEncoding.EncodeToString(raw[:len(raw)-16]), ErrBadCiphertext},
		// In CBC, flipping a ciphertext bit flips the same bit of the next
		// plaintext block: here the pad byte, and the length's top byte.
		{"pad byte flipped", flipByte(raw, len(raw)-1-aes.BlockSize), ErrBadCiphertext},
		{"length flipped", flipByte(raw, 0), ErrBadCiphertext},
		{"pad 0", seal(frameWith(2, "hi"+v1AppID, 24, 0)), ErrBadCiphertext},
		{"pad 33", seal(frameWith(2, "hi"+v1AppID, 24, 33)), ErrBadCiphertext},
		{"inconsistent pad", seal(append(frameWith(2, "hi"+v1AppID, 0, 0), append(bytes.Repeat([]byte{9}, 23), 24)...)), ErrBadCiphertext},
		{"message length past the end", seal(frameWith(1000, "hi"+v1AppID, 24, 24)), ErrBadCiphertext},
		{"message length 2^32-1", seal(frameWith(0xFFFFFFFF, "hi"+v1AppID, 24, 24)), ErrBadCiphertext},
		{"frame shorter than the header", seal(append([]byte("0123456789"), bytes.Repeat([]byte{22}, 22)...)), ErrBadCiphertext},
		{"aligned to 16 bytes only", seal(frameWith(0, v1AppID, 10, 10)), nil},
		{"wrong appid trailer", seal(frameWith(2, "hiwx0000000000000000", 24, 24)), ErrAppIDMismatch},
		{"appid trailer cut short", seal(frameWith(2, "hi"+v1AppID[:17], 25, 25)), ErrAppIDMismatch},
		{"message swallows the appid", seal(frameWith(20, "hi"+v1AppID, 24, 24)), ErrAppIDMismatch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Decrypt(tt.enc)
			wantErr(t, "Decrypt", err, tt.wantErr)
		})
	}
}

func TestDecryptForAnotherAppID(t *testing.T) {
	sealed, err := mustCipher(t, v1Key, "wx0000000000000001").Encrypt([]byte("<xml/>"))
	wantErr(t, "Encrypt", err, nil)
	_, err = mustCipher(t, v1Key, v1AppID).Decrypt(sealed)
	wantErr(t, "Decrypt", err, ErrAppIDMismatch)
}

func TestDecryptWithWrongKey(t *testing.T) {
	c := mustCipher(t, oKey, v1AppID) // right appid, wrong key
	_, err := c.Decrypt(v1Encrypt)
	if !errorsIsAny(err, ErrBadCiphertext, ErrAppIDMismatch) {
		t.Errorf("Decrypt under the wrong key: error = %v, want ErrBadCiphertext or ErrAppIDMismatch", err)
	}
}

// rawDecrypt returns the whole decrypted frame of enc, padding included.
func rawDecrypt(tb testing.TB, c *Cipher, enc string) []byte {
	tb.Helper()
	ct, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(ct)%aes.BlockSize != 0 {
		tb.Fatalf("bad ciphertext %q: %v", enc, err)
	}
	frame := make([]byte, len(ct))
	cipher.NewCBCDecrypter(c.block, c.iv).CryptBlocks(frame, ct)
	return frame
}

func flipByte(b []byte, i int) string {
	b = bytes.Clone(b)
	b[i] ^= 0x01
	return base64.StdEncoding.EncodeToString(b)
}
