package api

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// gatewayErrorHandler answers REST errors as the gateway does, but first
// turns the JSON parser's message for a bad enum value, e.g.
//
//	proto: (line 1:274): invalid value for enum field encryptMode: "SAFE"
//
// which names the field in camelCase, quotes a parser position and lists
// nothing, into the field violation the API's own validation gives:
//
//	encrypt_mode: "SAFE" is not one of ENCRYPT_MODE_PLAINTEXT, ENCRYPT_MODE_COMPATIBLE, ENCRYPT_MODE_SAFE
//
// The gateway keeps only the parser's text (it wraps the error with %v),
// so the field is found again by its JSON name in the request message of
// the method that was called.
func gatewayErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument {
		if v := enumViolation(ctx, st.Message()); v != nil {
			err = v
		} else if v := unknownFieldViolation(ctx, st.Message()); v != nil {
			err = v
		} else if v := typeViolation(ctx, st.Message()); v != nil {
			err = v
		}
	}
	if st, ok := status.FromError(err); ok {
		if after := retryAfter(st); after != "" {
			w.Header().Set("Retry-After", after)
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, clipStatus(err))
}

// badEnum match protojson's error for an enum value it does not know, in
// a body, and the gateway's for a query parameter it cannot parse (which
// enumViolation takes only when the field is an enum).
var badEnum = []*regexp.Regexp{
	regexp.MustCompile(`invalid value for enum field (\w+): (.*)$`),
	regexp.MustCompile(`^parsing field "(\w+)": (".*") is not a valid value$`),
}

// unknownField matches protojson's error for a body field the request
// message does not have.
var unknownField = regexp.MustCompile(`unknown field "([^"]{1,64})"`)

// unknownFieldViolation turns protojson's `unknown field "webhook"`, which
// says nothing of what the field should have been, into a field violation
// that names the nearest field the body may hold (webhook_url).
func unknownFieldViolation(ctx context.Context, msg string) error {
	m := unknownField.FindStringSubmatch(msg)
	if m == nil {
		return nil
	}
	md := requestMessage(ctx)
	if md == nil {
		return nil
	}
	reason := fmt.Sprintf("unknown field %q", m[1])
	if near := nearestField(md, m[1]); near != "" {
		reason += fmt.Sprintf(": did you mean %q?", near)
	}
	return fieldViolation(m[1], reason)
}

// fieldViolation is an InvalidArgument naming field, with reason, and
// the BadRequest detail the API's own validation gives.
func fieldViolation(field, reason string) error {
	st := status.New(codes.InvalidArgument, fmt.Sprintf("%s: %s", field, reason))
	if withDetails, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: field, Description: reason},
	}}); err == nil {
		st = withDetails
	}
	return st.Err()
}

// requestMessage is the request message of the method ctx calls.
func requestMessage(ctx context.Context) protoreflect.MessageDescriptor {
	method, ok := runtime.RPCMethod(ctx)
	if !ok {
		return nil
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(method, "/"), "/", ".")))
	if err != nil {
		return nil
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		return nil
	}
	return md.Input()
}

// nearestField is the field of msg, or of the messages it holds, whose
// name is nearest to name: one that name begins (webhook → webhook_url),
// else one at most two edits away; "" when none is near.
func nearestField(msg protoreflect.MessageDescriptor, name string) string {
	best, bestScore := "", 3
	eachField(msg, func(fd protoreflect.FieldDescriptor) bool {
		for _, candidate := range []string{string(fd.Name()), fd.JSONName()} {
			score := editDistance(strings.ToLower(name), strings.ToLower(candidate))
			if strings.HasPrefix(candidate, name) || strings.HasPrefix(name, candidate) {
				score = min(score, 1)
			}
			if score < bestScore {
				best, bestScore = string(fd.Name()), score
			}
		}
		return true
	})
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func enumViolation(ctx context.Context, msg string) error {
	var m []string
	for _, re := range badEnum {
		if m = re.FindStringSubmatch(msg); m != nil {
			break
		}
	}
	if m == nil {
		return nil
	}
	fd := requestField(ctx, m[1], func(f protoreflect.FieldDescriptor) bool { return f.Kind() == protoreflect.EnumKind })
	if fd == nil {
		return nil
	}
	value := m[2]
	if !strings.HasPrefix(value, `"`) {
		value = fmt.Sprintf("%q", value)
	}
	return fieldViolation(string(fd.Name()), fmt.Sprintf("%s is not one of %s", value, strings.Join(enumNames(fd.Enum()), ", ")))
}

// eachField calls f with the fields of msg and of the messages it holds
// (not the well-known types), breadth first: the request's own fields
// before a nested message's; f returns false to stop.
func eachField(msg protoreflect.MessageDescriptor, f func(protoreflect.FieldDescriptor) bool) {
	seen := map[protoreflect.FullName]bool{}
	queue := []protoreflect.MessageDescriptor{msg}
	for len(queue) > 0 {
		md := queue[0]
		queue = queue[1:]
		if seen[md.FullName()] {
			continue
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if !f(fd) {
				return
			}
			if fd.Kind() == protoreflect.MessageKind && !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
				queue = append(queue, fd.Message())
			}
		}
	}
}

// enumNames are an enum's values a caller may send: all but the zero
// *_UNSPECIFIED.
func enumNames(ed protoreflect.EnumDescriptor) []string {
	var names []string
	values := ed.Values()
	for i := range values.Len() {
		if v := values.Get(i); v.Number() != 0 {
			names = append(names, string(v.Name()))
		}
	}
	return names
}

// badType matches protojson's error for a value of the wrong JSON type,
// e.g. `invalid value for bool field orderedDelivery: "yes"`.
var badType = regexp.MustCompile(`\(line (\d+):(\d+)\): invalid value for (\w+) field (\w+): (.{0,64})$`)

// typeViolation turns protojson's message for a value of the wrong type,
// which names the field in camelCase, into a field violation at the
// field's own name that says what it takes.
func typeViolation(ctx context.Context, msg string) error {
	m := badType.FindStringSubmatch(msg)
	if m == nil {
		return nil
	}
	fd := requestField(ctx, m[4], func(protoreflect.FieldDescriptor) bool { return true })
	if fd == nil {
		return nil
	}
	want := map[string]string{"bool": "true or false", "string": "a string in quotes"}[m[3]]
	if want == "" {
		want = "a " + m[3]
		if strings.HasPrefix(m[3], "int") || strings.HasPrefix(m[3], "uint") {
			want = "a whole number (" + m[3] + ")"
		}
	}
	return fieldViolation(string(fd.Name()), fmt.Sprintf("must be %s, not %s (line %s, column %s)", want, m[5], m[1], m[2]))
}

// requestField is the field of the request message of the method ctx
// calls, or of a message it holds, named name (its JSON name or its own)
// and passing ok; nil if there is none.
func requestField(ctx context.Context, name string, ok func(protoreflect.FieldDescriptor) bool) protoreflect.FieldDescriptor {
	md := requestMessage(ctx)
	if md == nil {
		return nil
	}
	var fd protoreflect.FieldDescriptor
	eachField(md, func(f protoreflect.FieldDescriptor) bool {
		if ok(f) && (f.JSONName() == name || string(f.Name()) == name) {
			fd = f
			return false
		}
		return true
	})
	return fd
}
