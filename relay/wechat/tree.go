package wechat

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// This file turns a body of either format into one generic object, the
// shape encoding/json gives JSON decoded into an any with UseNumber:
// map[string]any whose values are string, json.Number, bool, nil, []any or
// map[string]any. Everything else in the package reads fields from that
// object, so XML and JSON are parsed once each and there is no second parser
// that could disagree with the first.

// maxXMLDepth bounds element nesting. WeChat nests at most two levels; the
// bound keeps hostile input from recursing deep.
const maxXMLDepth = 64

// decodeObject parses body, JSON or XML by its first byte, into an object.
// All errors are ErrMalformed.
func decodeObject(body []byte) (map[string]any, Format, error) {
	f, err := DetectFormat(body)
	if err != nil {
		return nil, 0, err
	}
	var obj map[string]any
	if f == FormatJSON {
		obj, err = decodeJSONObject(body)
	} else {
		obj, err = decodeXMLObject(body)
	}
	if err != nil {
		return nil, 0, err
	}
	return obj, f, nil
}

// decodeJSONObject parses one JSON object, keeping numbers verbatim as
// json.Number: a MsgId above 2^53 must never pass through a float64. A
// field named twice at the top level is refused, as a repeated leaf is in
// XML (addChild): WeChat never sends one, and which of the two a tenant's
// parser keeps is its own (encoding/json the last, others the first), so
// the relay and the tenant could read different messages.
func decodeJSONObject(body []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	malformed := func(err error) (map[string]any, error) {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if tok, err := d.Token(); err != nil {
		return malformed(err)
	} else if tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	obj := map[string]any{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return malformed(err)
		}
		name := tok.(string) // inside an object the decoder yields names here
		if _, dup := obj[name]; dup {
			return nil, fmt.Errorf("%w: field %s appears more than once", ErrMalformed, quoteName(name))
		}
		var v any
		if err := d.Decode(&v); err != nil {
			return malformed(err)
		}
		obj[name] = v
	}
	if _, err := d.Token(); err != nil { // the closing brace
		return malformed(err)
	}
	if len(bytes.TrimLeft(body[d.InputOffset():], " \t\r\n")) != 0 {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	return obj, nil
}

// quoteName quotes a field name for an error, cut to a few dozen bytes: the
// name comes from the request.
func quoteName(name string) string {
	const max = 40
	if len(name) > max {
		name = strings.ToValidUTF8(name[:max], "") + "…"
	}
	return strconv.Quote(name)
}

// decodeXMLObject parses an XML document whose root element (<xml> in
// WeChat's bodies, though the name is not checked) holds child elements.
//
// Each element becomes a field named after it: elements with children become
// objects, repeated siblings become arrays (see addChild), and leaves become
// strings or
// numbers. WeChat writes strings as CDATA and integers bare, so a leaf with
// CDATA is a string, a leaf of bare text that is a JSON integer becomes a
// json.Number with the same digits, and any other leaf is a string. That is
// what makes <MsgId>6054768590064713728</MsgId> and "MsgId":6054768590064713728
// decode alike. Attributes, comments, processing instructions and the blank
// text between elements are ignored; directives (DOCTYPE) and repeated
// leaves are refused.
func decodeXMLObject(body []byte) (map[string]any, error) {
	p := &xmlParser{d: xml.NewDecoder(bytes.NewReader(body)), body: body}
	var root map[string]any
	for {
		tok, err := p.d.Token()
		if errors.Is(err, io.EOF) {
			if root == nil {
				return nil, fmt.Errorf("%w: no XML root element", ErrMalformed)
			}
			return root, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil {
				return nil, fmt.Errorf("%w: more than one XML root element", ErrMalformed)
			}
			v, err := p.element(1)
			if err != nil {
				return nil, err
			}
			obj, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%w: XML root <%s> holds no elements", ErrMalformed, t.Name.Local)
			}
			root = obj
		case xml.CharData:
			if !isBlank(t) {
				return nil, fmt.Errorf("%w: text outside the XML root element", ErrMalformed)
			}
		case xml.Directive:
			return nil, fmt.Errorf("%w: XML directives are not allowed", ErrMalformed)
		}
	}
}

type xmlParser struct {
	d    *xml.Decoder
	body []byte
	prev int64 // input offset where the token being read starts
}

// element reads the content of the element whose start tag was just read,
// through its end tag, and returns its value.
func (p *xmlParser) element(depth int) (any, error) {
	if depth > maxXMLDepth {
		return nil, fmt.Errorf("%w: XML nested deeper than %d", ErrMalformed, maxXMLDepth)
	}
	var (
		children map[string]any
		text     strings.Builder // the leaf's value if it turns out to be one
		cdata    bool            // whether the element holds a CDATA section
		words    bool            // whether it holds non-blank bare text
		bare     []byte          // its bare text, for a CDATA-free leaf
	)
	p.prev = p.d.InputOffset()
	for {
		tok, err := p.d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			v, err := p.element(depth + 1)
			if err != nil {
				return nil, err
			}
			if children == nil {
				children = make(map[string]any)
			}
			if err := addChild(children, t.Name.Local, v); err != nil {
				return nil, err
			}
		case xml.EndElement:
			switch {
			case children != nil && (words || cdata):
				return nil, fmt.Errorf("%w: <%s> mixes text and elements", ErrMalformed, t.Name.Local)
			case children != nil:
				return children, nil
			case !cdata && isJSONInteger(bytes.TrimSpace(bare)):
				return json.Number(bytes.TrimSpace(bare)), nil
			case !cdata:
				return string(bare), nil
			}
			return text.String(), nil
		case xml.CharData:
			// The decoder hands over CDATA sections and bare text as
			// separate tokens; only the raw input tells them apart.
			if bytes.HasPrefix(p.body[p.prev:p.d.InputOffset()], []byte("<![CDATA[")) {
				cdata = true
				text.Write(t)
				break
			}
			bare = append(bare, t...)
			if !isBlank(t) {
				words = true
				// Blank text beside CDATA is layout; other text is content.
				text.Write(t)
			}
		case xml.Directive:
			return nil, fmt.Errorf("%w: XML directives are not allowed", ErrMalformed)
		}
		p.prev = p.d.InputOffset()
	}
}

// addChild stores v under name, turning repeated elements into an array:
// WeChat's lists (wxa_media_check's detail, SubscribeMsgPopupEvent's List)
// repeat an element of fields. A repeated leaf is refused instead: WeChat
// never repeats one, and <Content>a</Content><Content>b</Content> would
// reach the tenant as an array where it expects the string the relay read.
func addChild(obj map[string]any, name string, v any) error {
	old, repeated := obj[name]
	if !repeated {
		obj[name] = v
		return nil
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("%w: field %s appears more than once", ErrMalformed, quoteName(name))
	}
	switch old := old.(type) {
	case []any:
		obj[name] = append(old, v)
	case map[string]any:
		obj[name] = []any{old, v}
	default:
		return fmt.Errorf("%w: field %s appears more than once", ErrMalformed, quoteName(name))
	}
	return nil
}

// isJSONInteger reports whether b is an integer in JSON's number grammar,
// -?(0|[1-9][0-9]*), and so can be emitted verbatim as a JSON number.
// "007" is not: it would not be valid JSON.
func isJSONInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 1 && b[0] == '0' {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isBlank(b []byte) bool {
	return len(bytes.TrimLeft(b, " \t\r\n")) == 0
}

// canonicalJSON encodes obj compactly with keys sorted, numbers verbatim
// and <, > and & left unescaped (WeChat and tenants read raw UTF-8).
func canonicalJSON(obj map[string]any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// fields reads typed fields out of a decoded object. The first failure is
// kept in err and later reads return zero values, so a decoder can read
// every field and check once.
type fields struct {
	obj map[string]any
	err error
}

// string reads a string field. A number is taken as its digits, since XML
// without CDATA cannot tell the two apart. Absent or null reads as "".
func (r *fields) string(name string) string {
	switch v := r.obj[name].(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	default:
		r.fail(name, "a string", v)
		return ""
	}
}

// int64 reads an integer field sent as a number or as a decimal string
// (some pushes carry CreateTime as a string). Absent or null reads as 0.
func (r *fields) int64(name string) int64 {
	s, ok := r.integerText(name)
	if !ok {
		return 0
	}
	n, err := parseInt(s)
	if err != nil {
		r.fail(name, "an integer", s)
	}
	return n
}

// decimal reads an integer field as its exact decimal digits, for values
// such as MsgId that may not fit a float64 or even an int64. It takes a
// number or a string holding a JSON integer. Absent or null reads as "".
func (r *fields) decimal(name string) string {
	s, ok := r.integerText(name)
	if !ok {
		return ""
	}
	if !isJSONInteger([]byte(s)) {
		r.fail(name, "an integer", s)
		return ""
	}
	return s
}

// integerText is the text of an integer field given as a number or a
// string, not yet checked; ok is false when the field is absent or null,
// or is neither (which fails r).
func (r *fields) integerText(name string) (s string, ok bool) {
	switch v := r.obj[name].(type) {
	case nil:
		return "", false
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	default:
		r.fail(name, "an integer", v)
		return "", false
	}
}

func (r *fields) fail(name, want string, got any) {
	if r.err != nil {
		return
	}
	var desc string
	switch v := got.(type) {
	case string:
		desc = fmt.Sprintf("%q", truncate([]byte(v), 32))
	case bool:
		desc = "a boolean"
	case []any:
		desc = "an array"
	case map[string]any:
		desc = "an object"
	default:
		desc = fmt.Sprintf("%T", v)
	}
	r.err = fmt.Errorf("%w: %s must be %s, got %s", ErrMalformed, name, want, desc)
}
