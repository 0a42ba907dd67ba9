package api

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/wxrelay/wxrelay/tenant"
)

// textInterceptor refuses a request with a NUL character in any string
// field, naming the field. Protobuf guarantees valid UTF-8 but allows NUL,
// which PostgreSQL refuses in text columns and SQLite silently truncates
// at in some functions: a 500, or a value stored other than sent. One
// check over every field of every request, rather than one per field,
// so that a field added later is covered too. Bytes fields (media) are
// not text and are left alone.
//
// It also checks the shape of the identifiers a request names (idFields)
// before anything looks them up: an id is echoed in a not-found error and
// in the log, so a 10 MB event_id would be echoed whole.
func textInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		r := m.ProtoReflect()
		if field := fieldWithNUL(r, ""); field != "" {
			// Tenant fields are named as the tenant validation names them
			// and as the REST body (the tenant itself) holds them.
			field = strings.TrimPrefix(field, "tenant.")
			return nil, &tenant.FieldError{Field: field, Reason: "must not contain NUL characters (U+0000)"}
		}
		if err := checkIDs(r); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

// idFields are the top-level request fields that hold an identifier, with
// the most bytes one may have. Ids the relay makes are short and URL-safe
// (tn_ and 16 characters, evt_ and 26); page tokens are base64 of a
// cursor. A search query is one of these or an openid, of the same
// alphabet.
var idFields = map[protoreflect.Name]int{"id": 64, "event_id": 64, "component_id": 64, "page_token": 128, "query": 128, "openid": 128, "recovery_id": 64}

// checkIDs refuses an identifier over its length or with a character no id
// has, naming the field and not echoing the value.
func checkIDs(m protoreflect.Message) error {
	fields := m.Descriptor().Fields()
	for name, limit := range idFields {
		fd := fields.ByName(name)
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
			continue
		}
		v := m.Get(fd).String()
		if len(v) > limit {
			return &tenant.FieldError{Field: string(name), Reason: fmt.Sprintf("is %d bytes long; no %s is longer than %d", len(v), name, limit)}
		}
		if strings.ContainsFunc(v, func(r rune) bool { return !isIDRune(r) }) {
			return &tenant.FieldError{Field: string(name), Reason: "holds a character no " + string(name) + " has (ids are letters, digits, _, - and, in page tokens, =)"}
		}
	}
	return nil
}

func isIDRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-' || r == '='
}

// fieldWithNUL returns the path (snake_case, as clients write it) of the
// first string field in m holding a NUL, or "".
func fieldWithNUL(m protoreflect.Message, prefix string) string {
	var found string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
				found = valueWithNUL(fd.MapValue(), e, name+"["+strconv.Quote(k.String())+"]")
				if found == "" && strings.ContainsRune(k.String(), 0) {
					found = name
				}
				return found == ""
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && found == ""; i++ {
				found = valueWithNUL(fd, l.Get(i), name+"["+strconv.Itoa(i)+"]")
			}
		default:
			found = valueWithNUL(fd, v, name)
		}
		return found == ""
	})
	return found
}

func valueWithNUL(fd protoreflect.FieldDescriptor, v protoreflect.Value, name string) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if strings.ContainsRune(v.String(), 0) {
			return name
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return fieldWithNUL(v.Message(), name+".")
	}
	return ""
}
