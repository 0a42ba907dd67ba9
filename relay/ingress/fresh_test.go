package ingress_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/tenant"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// productionEnv is the push endpoint as serve builds it: tenants cached
// far longer than any test runs, timestamps checked within the default
// skew against clock.
func productionEnv(t *testing.T) (*relayEnv, *testClock) {
	clock := &testClock{t: time.Unix(1_800_000_000, 0)}
	return newRelayEnvWith(t, time.Hour, 0, clock.now), clock
}

// pushAt is a plaintext push of a text message with id msgID, stamped ts.
func pushAt(t *testing.T, p *wechat.Pusher, ts int64, msgID int64) *wechat.PushRequest {
	t.Helper()
	req, err := p.Push(wechat.TextMessage(wechat.FormatJSON, header(ts), "hi", msgID), ts, strconv.FormatInt(msgID, 10))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// pushNow pushes text message msgID from p to tenant id, stamped at the
// clock's now.
func (e *relayEnv) pushNow(clock *testClock, id tenant.ID, p *wechat.Pusher, msgID int64) answer {
	e.t.Helper()
	return e.post(id, pushAt(e.t, p, clock.now().Unix(), msgID))
}

func TestPushTimestampMustBeFresh(t *testing.T) {
	e, clock := productionEnv(t)
	tn := e.newTenant(tenant.EncryptPlaintext, tenant.FormatJSON)
	p := pusher(t, tn)
	now := clock.now().Unix()
	for _, tt := range []struct {
		name   string
		ts     string
		status int
	}{
		{"now", strconv.FormatInt(now, 10), 200},
		{"4 minutes old (a late retry)", strconv.FormatInt(now-240, 10), 200},
		{"4 minutes ahead (a fast clock)", strconv.FormatInt(now+240, 10), 200},
		{"30 days old", strconv.FormatInt(now-30*86400, 10), 400},
		{"a year ahead", strconv.FormatInt(now+365*86400, 10), 400},
		{"6 minutes old", strconv.FormatInt(now-360, 10), 400},
		{"zero", "0", 400},
		{"not a number", "abc", 400},
		{"missing", "", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Signed properly over the timestamp given: only its age is wrong.
			q := "signature=" + wechat.Sign(p.Token, tt.ts, "7") + "&timestamp=" + tt.ts + "&nonce=7"
			body := wechat.TextMessage(wechat.FormatJSON, header(now), "hi", int64(len(tt.name)))
			a := e.postRaw(tn.ID, q, "application/json", body)
			if a.status != tt.status {
				t.Errorf("status = %d %q, want %d", a.status, a.body, tt.status)
			}
			if tt.status != 200 && a.body == wechat.Success {
				t.Error("answered success")
			}
		})
	}
	// The URL verification is refused the same way.
	ts := "0"
	resp, err := http.Get(e.url + "/wx/" + string(tn.ID) + "?signature=" + wechat.Sign(p.Token, ts, "1") + "&timestamp=" + ts + "&nonce=1&echostr=hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("verification stamped 1970: status %d, want 400", resp.StatusCode)
	}
}

// A push captured on the wire and replayed after its de-duplication record
// is gone would be stored again, were the timestamp not checked.
func TestSafeModeReplayAfterPruneRefused(t *testing.T) {
	e, clock := productionEnv(t)
	tn := e.newTenant(tenant.EncryptSafe, tenant.FormatJSON)
	captured := pushAt(t, pusher(t, tn), clock.now().Unix(), 501)
	if a := e.post(tn.ID, captured); a.body != wechat.Success {
		t.Fatalf("original push: %v", a)
	}
	if a := e.post(tn.ID, captured); a.body != wechat.Success || len(e.stored(tn.ID)) != 1 {
		t.Fatalf("retry within the window: %v, %d events (want success, 1)", a, len(e.stored(tn.ID)))
	}
	// The retention has passed and the event, with its key, is pruned.
	clock.advance(2 * time.Hour)
	if _, err := e.db.Bun().NewDelete().Table("events").Where("tenant_id = ?", string(tn.ID)).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := e.post(tn.ID, captured)
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "timestamp") {
		t.Errorf("replay after pruning: %v, want 400 naming the timestamp", a)
	}
	if n := len(e.stored(tn.ID)); n != 0 {
		t.Errorf("replay stored %d events", n)
	}
}

// A change of the push Token or EncodingAESKey applies to the next push
// at once, and the previous values keep working for the grace period.
func TestPushSecretsChangeAtOnceWithGrace(t *testing.T) {
	e, clock := productionEnv(t)
	tn := e.newTenant(tenant.EncryptSafe, tenant.FormatXML)
	old := pusher(t, tn)
	next := 1000
	push := func(p *wechat.Pusher) answer {
		next++
		return e.pushNow(clock, tn.ID, p, int64(next))
	}
	if a := push(old); a.body != wechat.Success {
		t.Fatalf("before the change: %v", a) // also loads the tenant into the cache
	}

	newToken, newKey := "BBBBBnewtoken", "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj"
	changed, err := e.tenants.Update(context.Background(), tn.ID, tenant.Patch{Token: &newToken, EncodingAESKey: &newKey})
	if err != nil {
		t.Fatal(err)
	}
	if want := clock.now().Add(tenant.DefaultPushSecretGrace); !changed.Secrets.PreviousUntil.Equal(want) {
		t.Errorf("previous secrets accepted until %s, want %s", changed.Secrets.PreviousUntil, want)
	}
	fresh := pusher(t, changed)
	if a := push(fresh); a.body != wechat.Success {
		t.Errorf("new Token and key right after the change: %v", a)
	}
	clock.advance(tenant.DefaultPushSecretGrace - time.Second)
	if a := push(old); a.body != wechat.Success {
		t.Errorf("old Token and key within the grace period: %v", a)
	}
	clock.advance(2 * time.Second)
	if a := push(old); a.status != http.StatusUnauthorized {
		t.Errorf("old Token and key after the grace period: %v, want 401", a)
	}
	if a := push(fresh); a.body != wechat.Success {
		t.Errorf("new Token and key after the grace period: %v", a)
	}
}

// Without the grace period the old values stop at once, which also shows
// the change was not hidden by the cache.
func TestPushSecretsWithoutGrace(t *testing.T) {
	e, clock := productionEnv(t)
	tn := e.newTenant(tenant.EncryptPlaintext, tenant.FormatJSON)
	e.tenants.SetPushSecretGrace(0)
	old := pusher(t, tn)
	if a := e.pushNow(clock, tn.ID, old, 1); a.body != wechat.Success {
		t.Fatalf("before: %v", a)
	}
	tok := "CCCCC"
	if _, err := e.tenants.Update(context.Background(), tn.ID, tenant.Patch{Token: &tok}); err != nil {
		t.Fatal(err)
	}
	if a := e.pushNow(clock, tn.ID, old, 2); a.status != http.StatusUnauthorized {
		t.Errorf("old Token right after the change, no grace: %v, want 401", a)
	}
	if a := e.pushNow(clock, tn.ID, &wechat.Pusher{Token: tok, Mode: wechat.ModePlaintext}, 3); a.body != wechat.Success {
		t.Errorf("new Token: %v", a)
	}
}

// A deleted tenant's push URL is 404 at once, not 500 from a cached
// tenant whose events can no longer be stored: WeChat retries a 500.
func TestDeletedTenantIs404AtOnce(t *testing.T) {
	e, clock := productionEnv(t)
	tn := e.newTenant(tenant.EncryptPlaintext, tenant.FormatJSON)
	p := pusher(t, tn)
	if a := e.pushNow(clock, tn.ID, p, 1); a.body != wechat.Success {
		t.Fatalf("before: %v", a)
	}
	if err := e.tenants.Delete(context.Background(), tn.ID); err != nil {
		t.Fatal(err)
	}
	if a := e.pushNow(clock, tn.ID, p, 2); a.status != http.StatusNotFound {
		t.Errorf("push to a deleted tenant: %v, want 404", a)
	}

	// Deleted by another replica, whose notice has not arrived: this
	// process's cache still holds the tenant when the push comes.
	other := e.newTenant(tenant.EncryptPlaintext, tenant.FormatJSON, func(t *tenant.Tenant) { t.AppID = "wx0000000000000002" })
	p = pusher(t, other)
	if a := e.pushNow(clock, other.ID, p, 3); a.body != wechat.Success {
		t.Fatalf("before: %v", a)
	}
	if err := store.NewTenantStore(e.db).Delete(context.Background(), other.ID); err != nil {
		t.Fatal(err)
	}
	if a := e.pushNow(clock, other.ID, p, 4); a.status != http.StatusNotFound {
		t.Errorf("push to a tenant deleted elsewhere: %v, want 404", a)
	}
}

// A disabled tenant is refused at once, and served again at once.
func TestStateChangeAtOnce(t *testing.T) {
	e, clock := productionEnv(t)
	tn := e.newTenant(tenant.EncryptPlaintext, tenant.FormatJSON)
	p := pusher(t, tn)
	if a := e.pushNow(clock, tn.ID, p, 1); a.body != wechat.Success {
		t.Fatalf("before: %v", a)
	}
	for i, st := range []tenant.State{tenant.StateDisabled, tenant.StateActive} {
		if _, err := e.tenants.Update(context.Background(), tn.ID, tenant.Patch{State: &st}); err != nil {
			t.Fatal(err)
		}
		want := []int{http.StatusForbidden, http.StatusOK}[i]
		if a := e.pushNow(clock, tn.ID, p, int64(2+i)); a.status != want {
			t.Errorf("after setting state %d: %v, want %d", st, a, want)
		}
	}
}
