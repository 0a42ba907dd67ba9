package calllog_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxrelay/wxrelay/relay/calllog"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

func newTenant(t *testing.T, db *store.DB, id tenant.ID, appid string) {
	t.Helper()
	now := time.Now().UTC()
	err := store.NewTenantStore(db).Create(context.Background(), &tenant.Tenant{
		ID: id, AppID: appid, EncryptMode: tenant.EncryptPlaintext, DataFormat: tenant.FormatJSON,
		WebhookURL: "https://example.com/h", ReplyMode: tenant.ReplySuccess, State: tenant.StateActive,
		Secrets: tenant.Secrets{AppSecret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "t"}, WebhookSecrets: tenant.WebhookSecrets{Current: "whsec_x"},
		APIKeyHash: []byte{1}, CreateTime: now, UpdateTime: now, Version: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRecorder: records are written in batches by the interval or the
// batch size, Close writes what is queued, and List pages newest first.
func TestRecorder(t *testing.T) {
	db := storetest.New(t)
	newTenant(t, db, "tn_a", "wx0123456789abcdef")
	s := store.NewCallStore(db)
	r, err := calllog.NewRecorder(s, calllog.Options{Batch: 4, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 6 {
		r.Record(calllog.Call{TenantID: "tn_a", Time: at.Add(time.Duration(i) * time.Second), Method: "POST", Path: "/p", PathClass: "send", HTTPStatus: 200, Errcode: i, HasErrcode: true})
	}
	// The first 4 filled a batch; the interval (an hour) holds the rest.
	ctx := context.Background()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got, err := s.ListCalls(ctx, "tn_a", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 4 {
			break
		}
		if len(got) > 4 || time.Now().After(deadline) {
			t.Fatalf("%d calls stored before the interval, want the batch of 4", len(got))
		}
	}
	r.Close()
	page, next, err := calllog.List(ctx, s, "tn_a", 4, "")
	if err != nil || len(page) != 4 || next == "" || page[0].Errcode != 5 {
		t.Fatalf("first page: %d calls, next %q, %v; want 4 newest first and a next page", len(page), next, err)
	}
	rest, next, err := calllog.List(ctx, s, "tn_a", 4, next)
	if err != nil || len(rest) != 2 || next != "" || rest[1].Errcode != 0 {
		t.Fatalf("second page: %d calls, next %q, %v; want the 2 oldest and no next page", len(rest), next, err)
	}
	if _, _, err := calllog.List(ctx, s, "tn_a", 4, "garbage"); err == nil {
		t.Error("a bad page token was accepted")
	}
}

// TestRecorder_DropsWhenFull: with the queue full, Record does not block;
// the record is dropped and counted.
func TestRecorder_DropsWhenFull(t *testing.T) {
	db := storetest.New(t)
	newTenant(t, db, "tn_a", "wx0123456789abcdef")
	reg := prometheus.NewRegistry()
	r, err := calllog.NewRecorder(store.NewCallStore(db), calllog.Options{Queue: 1, Batch: 1000, Interval: time.Hour, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan struct{})
	go func() {
		for range 5000 {
			r.Record(calllog.Call{TenantID: "tn_a", Time: time.Now(), Method: "GET", Path: "/p", PathClass: "token"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked on a full queue")
	}
	if n, _ := testutil.GatherAndCount(reg, "wxrelay_call_records_dropped_total"); n != 1 {
		t.Fatalf("dropped counter missing")
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "wxrelay_call_records_dropped_total" && mf.GetMetric()[0].GetCounter().GetValue() < 1 {
			t.Errorf("no record counted as dropped with a queue of 1 and a writer holding 1000")
		}
	}
}

func TestClean(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	for _, tt := range []struct{ in, want string }{
		{"/cgi-bin/token", "/cgi-bin/token"},
		{"/a\x00b", "/a%00b"},
		{"/a\nb\x7f", "/a%0Ab%7F"},
		{"/a\xffb", "/a\uFFFDb"},
		{long, strings.Repeat("é", 126) + "…"},
	} {
		got := calllog.Clean(tt.in, 255)
		if got != tt.want {
			t.Errorf("Clean(%.40q) = %q, want %q", tt.in, got, tt.want)
		}
		if len(got) > 255 || !utf8.ValidString(got) {
			t.Errorf("Clean(%.40q) = %d bytes, valid UTF-8 %v", tt.in, len(got), utf8.ValidString(got))
		}
	}
}

// TestRecorder_BadRecordFailsAlone: a record the database refuses loses
// only itself, never the other tenants' records of its batch; and what a
// caller chose (a NUL in the path, a megabyte of path) is stored cleaned
// and cut. Run on both engines: PostgreSQL refuses NUL in text.
func TestRecorder_BadRecordFailsAlone(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		newTenant(t, db, "tn_a", "wx0123456789abcdef")
		newTenant(t, db, "tn_b", "wx00000000000000bb")
		reg := prometheus.NewRegistry()
		s := &refusing{CallStore: store.NewCallStore(db), refuse: "/poison"}
		r, err := calllog.NewRecorder(s, calllog.Options{Batch: 100, Interval: time.Hour, Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		r.Record(calllog.Call{TenantID: "tn_a", Time: now, Method: "POST", Path: "/cgi-bin/\x00nul", PathClass: "other"})
		r.Record(calllog.Call{TenantID: "tn_a", Time: now, Method: "POST", Path: "/cgi-bin/" + strings.Repeat("x", 1<<20), PathClass: "other"})
		r.Record(calllog.Call{TenantID: "tn_a", Time: now, Method: "POST", Path: "/poison", PathClass: "other"})
		for range 5 {
			r.Record(calllog.Call{TenantID: "tn_b", Time: now, Method: "POST", Path: "/cgi-bin/message/custom/send", PathClass: "send"})
		}
		r.Close()
		ctx := context.Background()
		b, err := s.ListCalls(ctx, "tn_b", 0, 100)
		if err != nil || len(b) != 5 {
			t.Fatalf("tenant b has %d records (%v), want all 5 despite a's refused one", len(b), err)
		}
		a, err := s.ListCalls(ctx, "tn_a", 0, 100)
		if err != nil || len(a) != 2 {
			t.Fatalf("tenant a has %d records (%v), want the 2 the store did not refuse", len(a), err)
		}
		paths := []string{a[0].Path, a[1].Path}
		if !slices.Contains(paths, "/cgi-bin/%00nul") {
			t.Errorf("paths %q, want the NUL stored as %%00", paths)
		}
		for _, p := range paths {
			if len(p) > calllog.MaxPathBytes {
				t.Errorf("a path of %d bytes was stored, over %d", len(p), calllog.MaxPathBytes)
			}
		}
		if got := counterValue(t, reg, "wxrelay_call_records_failed_total"); got != 1 {
			t.Errorf("failed records counted %v, want 1", got)
		}
	})
}

// refusing is a store that refuses any batch holding a record of one path,
// as a database refuses a value it cannot store.
type refusing struct {
	*store.CallStore
	refuse string
}

func (s *refusing) AppendCalls(ctx context.Context, calls []calllog.Call) error {
	for _, c := range calls {
		if c.Path == s.refuse {
			return errors.New("refused")
		}
	}
	return s.CallStore.AppendCalls(ctx, calls)
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestRecorder_RecordAfterClose: a call that finishes after the recorder
// closed (a handler outliving shutdown's grace) is dropped and counted,
// where it panicked with a send on a closed channel.
func TestRecorder_RecordAfterClose(t *testing.T) {
	db := storetest.New(t)
	reg := prometheus.NewRegistry()
	r, err := calllog.NewRecorder(store.NewCallStore(db), calllog.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	r.Close() // twice is harmless too
	r.Record(calllog.Call{TenantID: "tn_a", Time: time.Now(), Method: "GET", Path: "/p", PathClass: "token"})
	if got := counterValue(t, reg, "wxrelay_call_records_dropped_total"); got != 1 {
		t.Errorf("dropped %v records after Close, want 1", got)
	}
}
