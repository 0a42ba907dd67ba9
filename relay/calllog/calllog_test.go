package calllog_test

import (
	"context"
	"testing"
	"time"

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
		Secrets: tenant.Secrets{AppSecret: "s", Token: "t"}, WebhookSecrets: tenant.WebhookSecrets{Current: "whsec_x"},
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
