package wechat

import (
	"fmt"
	"strings"
)

// Format is the data format of push bodies, chosen in the mini-program
// console. The zero value is XML, WeChat's default.
type Format uint8

// The data formats.
const (
	FormatXML Format = iota
	FormatJSON
)

// ParseFormat parses "xml" or "json", ignoring case.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "xml":
		return FormatXML, nil
	case "json":
		return FormatJSON, nil
	}
	return 0, fmt.Errorf("%w: unknown data format %q (want xml or json)", ErrInvalidConfig, s)
}

// String returns "xml" or "json".
func (f Format) String() string {
	if f == FormatJSON {
		return "json"
	}
	return "xml"
}

// ContentType returns the Content-Type WeChat labels a body of this format
// with. Receivers must not trust the label (see [DetectFormat]).
func (f Format) ContentType() string {
	if f == FormatJSON {
		return "application/json"
	}
	return "text/xml"
}

// DetectFormat tells a JSON body from an XML one by its first byte that is
// not blank: '{' is JSON, '<' is XML. It never looks at Content-Type because
// JSON bodies have been seen arriving labelled text/xml. Anything else is
// ErrMalformed.
func DetectFormat(body []byte) (Format, error) {
	for _, b := range body {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return FormatJSON, nil
		case '<':
			return FormatXML, nil
		}
		return 0, fmt.Errorf("%w: body is neither JSON nor XML (starts with %q)", ErrMalformed, b)
	}
	return 0, fmt.Errorf("%w: empty body", ErrMalformed)
}

// Mode is the message encryption mode chosen in the mini-program console.
// The zero value is plaintext, WeChat's default.
type Mode uint8

// The encryption modes.
const (
	// ModePlaintext pushes unencrypted bodies, authenticated by a signature
	// that covers only the token, timestamp and nonce, not the body.
	ModePlaintext Mode = iota
	// ModeCompatible pushes the plaintext fields and an Encrypt field.
	ModeCompatible
	// ModeSafe pushes only ToUserName and Encrypt.
	ModeSafe
)

// ParseMode parses "plaintext", "compatible" or "safe", ignoring case.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "plaintext":
		return ModePlaintext, nil
	case "compatible":
		return ModeCompatible, nil
	case "safe":
		return ModeSafe, nil
	}
	return 0, fmt.Errorf("%w: unknown encryption mode %q (want plaintext, compatible or safe)", ErrInvalidConfig, s)
}

// String returns "plaintext", "compatible" or "safe".
func (m Mode) String() string {
	switch m {
	case ModePlaintext:
		return "plaintext"
	case ModeCompatible:
		return "compatible"
	case ModeSafe:
		return "safe"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// checkEndpoint validates the settings shared by Receiver and Pusher.
func checkEndpoint(token string, mode Mode, c *Cipher) error {
	if token == "" {
		// An empty token would make every signature computable by anyone.
		return fmt.Errorf("%w: empty token", ErrInvalidConfig)
	}
	switch mode {
	case ModePlaintext:
		return nil
	case ModeCompatible, ModeSafe:
		if c == nil {
			return fmt.Errorf("%w: %s mode needs a cipher", ErrInvalidConfig, mode)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown encryption mode %s", ErrInvalidConfig, mode)
}
