package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// pageNames are the templates/ files that are pages; each is parsed with
// layout.html and the shared partials.
var pageNames = []string{"login", "tenants", "tenant_new", "created", "tenant", "events", "event", "error",
	"components", "component", "component_new", "calls", "search", "operators", "audit"}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// funcs are the templates' helpers. html/template escapes everything they
// return: none of them marks anything as safe HTML.
var funcs = template.FuncMap{
	// enum drops a proto enum name's prefix: STATE_FAILED → FAILED.
	"enum": func(prefix string, v fmt.Stringer) string { return strings.TrimPrefix(v.String(), prefix) },
	"ts": func(t *timestamppb.Timestamp) string {
		if t == nil {
			return "—"
		}
		return t.AsTime().UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"ago": func(t *timestamppb.Timestamp) string {
		if t == nil {
			return ""
		}
		return agoText(time.Since(t.AsTime()))
	},
	"dur": func(d *durationpb.Duration) string {
		if d == nil {
			return "—"
		}
		return d.AsDuration().Round(time.Second).String()
	},
	"lower": strings.ToLower,
	// funcs lists permission set ids: 17, 19.
	"funcs": func(ids []int32) string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = fmt.Sprint(id)
		}
		return strings.Join(out, ", ")
	},
	// deref is an optional number's value (call errcodes).
	"deref": func(p *int32) int32 { return *p },
	// micros is a duration in microseconds, as people read it: 3.2 ms.
	"micros": func(us int64) string {
		return (time.Duration(us) * time.Microsecond).Round(100 * time.Microsecond).String()
	},
	"join":  strings.Join,
	"count": func(m map[string]int, k string) int { return m[k] },
	// fe is the argument of the field-error partial.
	"fe":           func(f tenantForm, field string) fieldRef { return fieldRef{Errors: f.Errors, Field: field} },
	"cfe":          func(f componentForm, field string) fieldRef { return fieldRef{Errors: f.Errors, Field: field} },
	"modes":        func() []string { return []string{"SAFE", "COMPATIBLE", "PLAINTEXT"} },
	"formats":      func() []string { return []string{"JSON", "XML"} },
	"replies":      func() []string { return []string{"SUCCESS", "TRANSFER_CUSTOMER_SERVICE"} },
	"tenantStates": func() []string { return []string{"ACTIVE", "DISABLED"} },
}

type fieldRef struct {
	Errors map[string]string
	Field  string
}

// agoText is a rough age: 45s ago, 12m ago, 3h ago, 2d ago.
func agoText(d time.Duration) string {
	switch {
	case d < 0:
		// A time to come: a retry's.
		return "in " + strings.TrimSuffix(agoText(-d), " ago")
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}
