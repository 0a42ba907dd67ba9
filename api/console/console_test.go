package console

import (
	"strings"
	"testing"
	"time"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay"
)

func TestSafeNext(t *testing.T) {
	for next, want := range map[string]string{
		"":                                  "/console/",
		"/console/tenants/tn_1?x=1":         "/console/tenants/tn_1?x=1",
		"/console/tenants/tn_1/events":      "/console/tenants/tn_1/events",
		"https://evil.example/console/":     "/console/",
		"//evil.example/console/":           "/console/",
		"/\\evil.example/console/":          "/console/",
		"/v1/tenants":                       "/console/",
		"javascript:alert(1)":               "/console/",
		"/console/../v1/tenants":            "/console/../v1/tenants", // the mux cleans it, still on this host
		"/console/%2F%2Fevil.example":       "/console/%2F%2Fevil.example",
		"http:/console/":                    "/console/",
		"/console/tenants/x#frag":           "/console/tenants/x",
		"/console/\x00":                     "/console/",
		"/consolex/":                        "/console/",
		"/console/tenants/new?next=//evil/": "/console/tenants/new?next=//evil/",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
		if got := safeNext(next); strings.HasPrefix(got, "//") || !strings.HasPrefix(got, "/") {
			t.Errorf("safeNext(%q) = %q leaves this host", next, got)
		}
	}
}

// TestChart: each minute's attempts become one stroke at its place in
// the day, delivered from the baseline and failed above, scaled to the
// busiest minute; minutes outside the day are left out.
func TestChart(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 30, 20, 0, time.UTC)
	to := time.Date(2026, 12, 3, 12, 31, 0, 0, time.UTC) // the current minute is the last column
	from := to.Add(-chartSpan)
	c := newChart([]relay.MinuteCount{
		{Minute: from.Add(-time.Minute), Delivered: 999},          // before the day
		{Minute: from, Delivered: 15},                             // column 0
		{Minute: from.Add(100 * time.Minute), Failed: 1},          // column 100
		{Minute: to.Add(-time.Minute), Delivered: 30, Failed: 30}, // the last column, the busiest
		{Minute: to, Delivered: 999},                              // after it
	}, now)
	if c.Max != 60 || c.TotalDelivered != 45 || c.TotalFailed != 31 {
		t.Fatalf("max %d, totals %d delivered and %d failed; want 60, 45 and 31, the day's minutes only", c.Max, c.TotalDelivered, c.TotalFailed)
	}
	wantD := "M0.5 120v-30M1439.5 120v-60"
	wantF := "M100.5 120v-2M1439.5 60v-60"
	if c.Delivered != wantD || c.Failed != wantF {
		t.Errorf("paths\n delivered %q\n failed    %q\nwant\n delivered %q\n failed    %q", c.Delivered, c.Failed, wantD, wantF)
	}
	if len(c.Ticks) != 4 || c.Ticks[0].Label != "18:00" || c.Ticks[0].X != 329 {
		t.Errorf("ticks %+v, want 4, every 6 h from 18:00 (column 329)", c.Ticks)
	}
	if h := scale(1, 100000); h != 1 {
		t.Errorf("one failure among 100,000 is %d units high, want 1: it must still show", h)
	}
	if empty := newChart(nil, now); empty.Delivered != "" || empty.Failed != "" || empty.Max != 0 {
		t.Errorf("an empty day draws %+v", empty)
	}
}

// TestPagesParse: every page's template parses with the layout.
func TestPagesParse(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range pageNames {
		if pages[name].Lookup("content") == nil || pages[name].Lookup("layout") == nil {
			t.Errorf("page %s lacks its content or the layout", name)
		}
	}
}

// TestEventsPageWhileRecovering: while a recovery runs, the form to start
// another is disabled and says why (the API would refuse it); once done,
// it is offered again.
func TestEventsPageWhileRecovering(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	render := func(running bool) string {
		t.Helper()
		state := wxrelayv1.Recovery_STATE_DONE
		if running {
			state = wxrelayv1.Recovery_STATE_RUNNING
		}
		body := eventListBody{T: &wxrelayv1.Tenant{Id: "tn_x", Appid: "wx0123456789abcdef"}, Running: running,
			Recoveries: []*wxrelayv1.Recovery{{Id: "rcv_1", State: state, Total: 3, Recovered: 1}}}
		var b strings.Builder
		if err := pages["events"].ExecuteTemplate(&b, "layout", pageData{Title: "Events", Body: body}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if page := render(true); !strings.Contains(page, `id="recover" disabled`) || !strings.Contains(page, "One recovery at a time") {
		t.Errorf("while a recovery runs the form is offered:\n%s", page)
	}
	if page := render(false); strings.Contains(page, `id="recover" disabled`) || strings.Contains(page, "One recovery at a time") {
		t.Errorf("with no recovery running the form is disabled")
	}
}
