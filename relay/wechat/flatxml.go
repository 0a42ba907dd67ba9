package wechat

import (
	"bytes"
	"unicode/utf8"
)

// parseFlatXML parses body as WeChat writes its XML pushes, into fs:
//
//	<xml><ToUserName><![CDATA[gh_…]]></ToUserName><CreateTime>1482048670</CreateTime>…</xml>
//
// A leaf holding exactly one CDATA section is a string; a leaf holding bare
// JSON-integer digits is a number, as decodeXMLObject reads them. Blank text
// may stand between elements. Anything else (a declaration, attributes,
// comments, entities, nested or empty elements, text beside CDATA) is left
// to the generic path: ok is false.
func parseFlatXML(body []byte, fs []flatField) (_ []flatField, ok bool) {
	fs = fs[:0]
	i := skipJSONSpace(body, 0) // XML's blanks are JSON's
	root, i, ok := xmlTag(body, i, false)
	if !ok {
		return nil, false
	}
	for {
		i = skipJSONSpace(body, i)
		if i+1 < len(body) && body[i] == '<' && body[i+1] == '/' {
			break
		}
		if len(fs) == maxFlatFields {
			return nil, false
		}
		var f flatField
		if f.name, i, ok = xmlTag(body, i, false); !ok {
			return nil, false
		}
		if f.value, f.str, i, ok = xmlLeaf(body, i); !ok {
			return nil, false
		}
		var end []byte
		if end, i, ok = xmlTag(body, i, true); !ok || !bytes.Equal(end, f.name) {
			return nil, false
		}
		fs = append(fs, f)
	}
	end, i, ok := xmlTag(body, i, true)
	if !ok || !bytes.Equal(end, root) || len(fs) == 0 || skipJSONSpace(body, i) != len(body) {
		return nil, false
	}
	return sortFlat(fs)
}

// xmlTag reads the start tag (or, if closing, the end tag) at b[i], with no
// attributes and no blanks, and returns its name and the index after it.
// Names are ASCII letters, digits and underscores, not starting with a
// digit: every name WeChat uses, and nothing encoding/xml would read
// otherwise.
func xmlTag(b []byte, i int, closing bool) (name []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '<' {
		return nil, 0, false
	}
	i++
	if closing {
		if i >= len(b) || b[i] != '/' {
			return nil, 0, false
		}
		i++
	}
	start := i
	for i < len(b) && (b[i] == '_' || 'a' <= b[i]|0x20 && b[i]|0x20 <= 'z' || i > start && '0' <= b[i] && b[i] <= '9') {
		i++
	}
	if i == start || i >= len(b) || b[i] != '>' {
		return nil, 0, false
	}
	return b[start:i], i + 1, true
}

var (
	cdataOpen  = []byte("<![CDATA[")
	cdataClose = []byte("]]>")
)

// xmlLeaf reads a leaf's content at b[i], up to its end tag: one CDATA
// section whose text JSON writes verbatim (see xmlText), or a JSON integer.
func xmlLeaf(b []byte, i int) (value []byte, str bool, next int, ok bool) {
	if bytes.HasPrefix(b[i:], cdataOpen) {
		start := i + len(cdataOpen)
		n := bytes.Index(b[start:], cdataClose)
		if n < 0 || !xmlText(b[start:start+n]) {
			return nil, false, 0, false
		}
		return b[start : start+n], true, start + n + len(cdataClose), true
	}
	j := i
	for j < len(b) && b[j] != '<' {
		j++
	}
	if !isJSONInteger(b[i:j]) {
		return nil, false, 0, false
	}
	return b[i:j], false, j, true
}

// xmlText reports whether s reads the same as XML character data and as
// the text of a JSON string: no control characters (XML would turn \r\n
// into \n, JSON escapes them), no quote or backslash, valid UTF-8 of
// characters XML allows, and no U+2028 or U+2029 (which encoding/json
// escapes).
func xmlText(s []byte) bool {
	for k := 0; k < len(s); {
		c := s[k]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' {
				return false
			}
			k++
			continue
		}
		r, size := utf8.DecodeRune(s[k:])
		if r == utf8.RuneError || r == '\u2028' || r == '\u2029' || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		k += size
	}
	return true
}
