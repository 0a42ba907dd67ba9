package wechat

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// field is one name and value of a body this package writes, in the order
// WeChat writes them. A string value becomes CDATA in XML and a JSON string;
// an integer is bare in XML and a JSON number.
type field struct {
	name  string
	str   string
	num   int64
	isNum bool
}

func str(name, v string) field { return field{name: name, str: v} }
func num(name string, v int64) field {
	return field{name: name, num: v, isNum: true}
}

// encodeFields writes fields as a flat JSON object or <xml> document.
func encodeFields(f Format, fs ...field) []byte {
	var b bytes.Buffer
	if f == FormatJSON {
		b.WriteByte('{')
		for i, fd := range fs {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONField(&b, fd)
		}
		b.WriteByte('}')
		return b.Bytes()
	}
	b.WriteString("<xml>")
	for _, fd := range fs {
		writeXMLField(&b, fd)
	}
	b.WriteString("</xml>")
	return b.Bytes()
}

func writeJSONField(b *bytes.Buffer, fd field) {
	writeJSONString(b, fd.name)
	b.WriteByte(':')
	if fd.isNum {
		b.WriteString(formatInt(fd.num))
	} else {
		writeJSONString(b, fd.str)
	}
}

func writeXMLField(b *bytes.Buffer, fd field) {
	b.WriteString("<" + fd.name + ">")
	if fd.isNum {
		b.WriteString(formatInt(fd.num))
	} else {
		writeCDATA(b, fd.str)
	}
	b.WriteString("</" + fd.name + ">")
}

// writeJSONString writes s as a JSON string without escaping <, > and &:
// WeChat shows escapes such as \u003c literally to users.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode's newline
}

// writeCDATA writes s as CDATA. A "]]>" inside s would end the section, so
// it is split across two sections. Characters XML cannot carry at all (NUL
// and most other C0 controls, invalid UTF-8) become U+FFFD, as in
// encoding/xml's EscapeText; a reader will also see "\r\n" as "\n".
func writeCDATA(b *bytes.Buffer, s string) {
	b.WriteString("<![CDATA[")
	for s != "" {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case strings.HasPrefix(s, "]]>"):
			b.WriteString("]]]]><![CDATA[>")
			size = len("]]>")
		case r == utf8.RuneError && size == 1, !isXMLChar(r):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	b.WriteString("]]>")
}

// isXMLChar reports whether r may appear in an XML 1.0 document.
func isXMLChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		0x20 <= r && r <= 0xD7FF || 0xE000 <= r && r <= 0xFFFD || 0x10000 <= r && r <= utf8.MaxRune
}

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }

func parseInt(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
