package wechat

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

// This file is a fast path for the bodies WeChat actually sends: one flat
// JSON object whose values are strings and numbers, or its XML twin, an
// <xml> element of leaves that each hold one CDATA section or an integer
// (flatxml.go). It reads such a body without building the generic object of
// tree.go and writes the canonical Data directly. Whatever it does not
// handle exactly as the generic path would (escapes in strings, nested
// values, booleans, null, duplicate names, attributes, entities, text that
// encoding/json would rewrite, invalid input of any kind) makes it give up,
// and the caller takes the generic path, which then decides: so results,
// errors included, are those of the generic path by construction.

// flatField is one member of a flat JSON object or one leaf of a flat XML
// document: its name and its value's text, that of a string (holding
// nothing JSON would escape, so the text is the string and is written
// between quotes as it is) or that of a number literal.
type flatField struct {
	name, value []byte
	str         bool
}

// maxFlatFields bounds the members the fast path takes; more go the
// generic way.
const maxFlatFields = 32

// parseFlatJSON parses body as a flat JSON object into fs, reusing its
// storage. ok is false when the body is not one the fast path handles.
func parseFlatJSON(body []byte, fs []flatField) (_ []flatField, ok bool) {
	fs = fs[:0]
	i := skipJSONSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false
	}
	i = skipJSONSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		i++
	} else {
		for {
			if len(fs) == maxFlatFields {
				return nil, false
			}
			var f flatField
			if f.name, i, ok = flatString(body, i); !ok {
				return nil, false
			}
			i = skipJSONSpace(body, i)
			if i >= len(body) || body[i] != ':' {
				return nil, false
			}
			i = skipJSONSpace(body, i+1)
			if i >= len(body) {
				return nil, false
			}
			if body[i] == '"' {
				f.str = true
				f.value, i, ok = flatString(body, i)
			} else {
				f.value, i, ok = flatNumber(body, i)
			}
			if !ok {
				return nil, false
			}
			fs = append(fs, f)
			i = skipJSONSpace(body, i)
			if i >= len(body) {
				return nil, false
			}
			if body[i] == '}' {
				i++
				break
			}
			if body[i] != ',' {
				return nil, false
			}
			i = skipJSONSpace(body, i+1)
		}
	}
	if skipJSONSpace(body, i) != len(body) {
		return nil, false
	}
	return sortFlat(fs)
}

// sortFlat sorts fs by name, as encoding/json writes a map. A repeated name
// is left to the generic path (a JSON object keeps the last, XML makes an
// array).
func sortFlat(fs []flatField) (_ []flatField, ok bool) {
	slices.SortFunc(fs, func(a, b flatField) int { return bytes.Compare(a.name, b.name) })
	for k := 1; k < len(fs); k++ {
		if bytes.Equal(fs[k-1].name, fs[k].name) {
			return nil, false
		}
	}
	return fs, true
}

// parseFlat parses a flat JSON object or a flat XML document, told apart by
// the first byte that is not a space, as DetectFormat does.
func parseFlat(body []byte, fs []flatField) (_ []flatField, f Format, ok bool) {
	i := skipJSONSpace(body, 0)
	if i < len(body) && body[i] == '<' {
		fs, ok = parseFlatXML(body, fs)
		return fs, FormatXML, ok
	}
	fs, ok = parseFlatJSON(body, fs)
	return fs, FormatJSON, ok
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// flatString reads the string starting at b[i], its opening quote, and
// returns its content and the index after its closing quote. ok is false
// unless the content is verbatim both ways: no escapes, no control
// characters, valid UTF-8 (encoding/json would replace invalid bytes) and
// no U+2028 or U+2029 (which it would escape).
func flatString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	start := i + 1
	ascii := true
	for j := start; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '"':
			s = b[start:j]
			if !ascii && (!utf8.Valid(s) || bytes.Contains(s, lineSep) || bytes.Contains(s, paraSep)) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}

var (
	lineSep = []byte("\u2028")
	paraSep = []byte("\u2029")
)

// flatNumber reads the number literal starting at b[i] in JSON's grammar,
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and returns it and the
// index after it.
func flatNumber(b []byte, i int) (n []byte, next int, ok bool) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return nil, 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return nil, 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return nil, 0, false
		}
		i = j
	}
	return b[start:i], i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// flatLookup returns the field named name of the sorted fs, or nil.
func flatLookup(fs []flatField, name string) *flatField {
	for k := range fs {
		if string(fs[k].name) == name {
			return &fs[k]
		}
	}
	return nil
}

// flatText reads a field as fields.string does: a string or a number's
// digits, "" when absent.
func flatText(fs []flatField, name string) string {
	if f := flatLookup(fs, name); f != nil {
		return string(f.value)
	}
	return ""
}

// parseEnvelopeFast is ParseEnvelope for a flat body; ok is false when the
// generic path must decide.
func parseEnvelopeFast(body []byte) (_ *Envelope, ok bool) {
	var storage [8]flatField
	fs, format, ok := parseFlat(body, storage[:])
	if !ok {
		return nil, false
	}
	env := &Envelope{Format: format, ToUserName: flatText(fs, "ToUserName"), Encrypt: flatText(fs, "Encrypt")}
	if env.Encrypt == "" {
		return nil, false
	}
	return env, true
}

// decodeMessageFast is DecodeMessage for a flat body; ok is false when the
// generic path must decide, errors included.
func decodeMessageFast(body []byte) (_ *Message, ok bool) {
	var storage [16]flatField
	fs, format, ok := parseFlat(body, storage[:])
	if !ok {
		return nil, false
	}
	m := &Message{
		Format:       format,
		ToUserName:   flatText(fs, "ToUserName"),
		FromUserName: flatText(fs, "FromUserName"),
		MsgType:      flatText(fs, "MsgType"),
		Event:        flatText(fs, "Event"),
	}
	if m.MsgType == "" {
		return nil, false
	}
	if f := flatLookup(fs, "CreateTime"); f != nil {
		n, err := parseInt(string(f.value))
		if err != nil {
			return nil, false
		}
		m.CreateTime = n
	}
	if f := flatLookup(fs, "MsgId"); f != nil {
		if !isJSONInteger(f.value) {
			return nil, false
		}
		m.MsgID = string(f.value)
	}
	size := 2
	for _, f := range fs {
		size += len(f.name) + len(f.value) + 6
	}
	data := make([]byte, 0, size)
	data = append(data, '{')
	for k, f := range fs {
		if k > 0 {
			data = append(data, ',')
		}
		data = append(data, '"')
		data = append(data, f.name...)
		data = append(data, '"', ':')
		if f.str {
			data = append(data, '"')
			data = append(data, f.value...)
			data = append(data, '"')
		} else {
			data = append(data, f.value...)
		}
	}
	m.Data = append(data, '}')
	return m, true
}
