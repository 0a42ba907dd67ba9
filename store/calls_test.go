package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/calllog"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
)

func TestCallStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ts := store.NewTenantStore(db)
		mustCreate(t, ts, newTenant("tn_one", "wx0123456789abcdef"))
		mustCreate(t, ts, newTenant("tn_two", "wx00000000000000ff"))
		s := store.NewCallStore(db)
		at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
		var calls []calllog.Call
		for i := range 5 {
			calls = append(calls, calllog.Call{TenantID: "tn_one", Time: at.Add(time.Duration(i) * time.Minute), Method: "POST",
				Path: "/cgi-bin/message/custom/send", PathClass: "send", HTTPStatus: 200, Errcode: i, HasErrcode: i%2 == 0,
				Errmsg: "ok", Duration: time.Duration(i+1) * time.Millisecond, Retried: i == 3})
		}
		calls = append(calls, calllog.Call{TenantID: "tn_two", Time: at, Method: "GET", Path: "/cgi-bin/token", PathClass: "token", HTTPStatus: 200, HasErrcode: true},
			calllog.Call{TenantID: "tn_gone", Time: at, Method: "GET", Path: "/cgi-bin/token", PathClass: "token", HTTPStatus: 200})
		if err := s.AppendCalls(ctx, calls); err != nil {
			t.Fatalf("AppendCalls (one tenant unknown): %v", err)
		}

		got, err := s.ListCalls(ctx, "tn_one", 0, 3)
		if err != nil || len(got) != 3 {
			t.Fatalf("ListCalls = %d, %v; want 3", len(got), err)
		}
		if c := got[0]; c.Errcode != 4 || !c.HasErrcode || !c.Time.Equal(at.Add(4*time.Minute)) || c.Duration != 5*time.Millisecond || c.Path != "/cgi-bin/message/custom/send" {
			t.Errorf("newest call = %+v", c)
		}
		if got[1].HasErrcode || !got[1].Retried {
			t.Errorf("second newest = %+v, want no errcode, retried", got[1])
		}
		rest, err := s.ListCalls(ctx, "tn_one", got[2].Seq, 10)
		if err != nil || len(rest) != 2 || rest[0].Duration != 2*time.Millisecond {
			t.Fatalf("next page = %+v, %v; want the 2 oldest", rest, err)
		}
		if two, _ := s.ListCalls(ctx, "tn_two", 0, 10); len(two) != 1 {
			t.Errorf("tn_two has %d calls, want 1", len(two))
		}

		n, err := s.PruneCalls(ctx, at.Add(150*time.Second), 100)
		if err != nil || n != 4 { // tn_one's first three and tn_two's
			t.Fatalf("PruneCalls = %d, %v; want 4", n, err)
		}
		if err := deleteAndPurge(ctx, db, "tn_one"); err != nil {
			t.Fatal(err)
		}
		if left, _ := s.ListCalls(ctx, "tn_one", 0, 10); len(left) != 0 {
			t.Errorf("a deleted tenant's calls remain: %d", len(left))
		}
	})
}
