package api

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestEveryMethodHasAPolicy: a method missing from policy is refused to
// everyone, admins included, so a new RPC left out of it would ship
// unusable; every method of wxrelay's services is listed.
func TestEveryMethodHasAPolicy(t *testing.T) {
	n := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("wxrelay.v1", func(fd protoreflect.FileDescriptor) bool {
		services := fd.Services()
		for i := range services.Len() {
			methods := services.Get(i).Methods()
			for j := range methods.Len() {
				m := methods.Get(j)
				name := "/" + string(services.Get(i).FullName()) + "/" + string(m.Name())
				n++
				if _, ok := policy[name]; !ok {
					t.Errorf("%s has no access policy (api/auth.go)", name)
				}
				// A viewer reads: what reads by its name is open to one,
				// and nothing that is audited as a change.
				read := strings.HasPrefix(string(m.Name()), "Get") || strings.HasPrefix(string(m.Name()), "List") || m.Name() == "Search"
				if viewerMethods[name] != read || (viewerMethods[name] && audited[name]) {
					t.Errorf("%s: open to viewers %v, a read by its name %v, audited %v", name, viewerMethods[name], read, audited[name])
				}
			}
		}
		return true
	})
	if n < 25 {
		t.Errorf("found %d methods; the test reads the wrong registry", n)
	}
}
