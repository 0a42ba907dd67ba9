package api

import (
	"context"
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
func textInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if field := fieldWithNUL(m.ProtoReflect(), ""); field != "" {
			// Tenant fields are named as the tenant validation names them
			// and as the REST body (the tenant itself) holds them.
			field = strings.TrimPrefix(field, "tenant.")
			return nil, &tenant.FieldError{Field: field, Reason: "must not contain NUL characters (U+0000)"}
		}
	}
	return handler(ctx, req)
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
