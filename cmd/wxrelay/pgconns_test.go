package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// TestReplicas_BoundedConnections runs two relays on a PostgreSQL role
// that may hold 40 connections, the default WXRELAY_DB_MAX_CONNS (20)
// each, under 200 callers at once for 3 s, half of them API calls and
// half pushes, split between them: every call and push is answered, none
// refused for want of a connection. Unbounded, the pools opened connections until the
// server refused them (53300), ingest commits included.
func TestReplicas_BoundedConnections(t *testing.T) {
	dsn := storetest.PostgresLimitedDSN(t, 40) // skips unless WXRELAY_TEST_POSTGRES is set
	key := make([]byte, 32)
	rand.Read(key)
	rs := startReplicas(t, 2, "WXRELAY_DB="+dsn, "WXRELAY_SECRET_KEY="+base64.StdEncoding.EncodeToString(key))
	admin := adminTokenFor(t, rs[0].cmd.Dir, []string{"WXRELAY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key), "WXRELAY_DB=" + dsn})
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
		APIKey string              `json:"api_key"`
	}
	body := `{"appid":"wx0123456789abcdef","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"PushToken1","encoding_aes_key":"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"encrypt_mode":"ENCRYPT_MODE_SAFE","data_format":"DATA_FORMAT_JSON","webhook_url":"https://hooks.example.com/a"}`
	if code := rs[0].api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	cipher, _ := wechat.NewCipher("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx0123456789abcdef")
	pusher := &wechat.Pusher{Token: "PushToken1", Mode: wechat.ModeSafe, Cipher: cipher}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	var failed atomic.Int64
	var firstFailure atomic.Value
	fail := func(what string) {
		if failed.Add(1) == 1 {
			firstFailure.Store(what)
		}
	}
	now := time.Now().Unix()
	var seq, calls atomic.Int64
	until := time.Now().Add(3 * time.Second)
	// 200 callers at once, for 3 s, each taking turns between the two
	// replicas: half read the tenant's events, half push.
	atOnce(200, func(w int) {
		for time.Now().Before(until) {
			i := seq.Add(1)
			calls.Add(1)
			r := rs[i%2]
			if w%2 == 0 {
				req, _ := http.NewRequest("GET", "http://"+r.http+"/v1/tenants/"+created.Tenant.ID+"/events?page_size=5", nil)
				req.Header.Set("Authorization", "Bearer "+created.APIKey)
				resp, err := client.Do(req)
				if err != nil {
					fail(err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail(fmt.Sprintf("API call: %d %s", resp.StatusCode, b))
				}
				continue
			}
			req, err := pusher.Push(wechat.TextMessage(wechat.FormatJSON, wechat.Header{FromUserName: "o1", CreateTime: now}, "hi", i), now, fmt.Sprint(i))
			if err != nil {
				fail(err.Error())
				continue
			}
			resp, err := client.Post("http://"+r.http+"/wx/"+created.Tenant.ID+"?"+req.RawQuery(), req.ContentType, bytes.NewReader(req.Body))
			if err != nil {
				fail(err.Error())
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "success" {
				fail(fmt.Sprintf("push: %d %s", resp.StatusCode, b))
			}
		}
	})
	t.Logf("%d API calls and pushes", calls.Load())
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d calls and pushes failed; the first: %v", n, calls.Load(), firstFailure.Load())
	}
	for i, r := range rs {
		if log := r.log.String(); strings.Contains(log, "53300") || strings.Contains(log, "too many") {
			t.Errorf("replica %d was refused connections:\n%.3000s", i, log)
		}
	}
}
