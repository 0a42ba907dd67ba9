package ingress_test

import (
	"bytes"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// BenchmarkPush measures the whole push path (HTTP, verification,
// decryption, decoding, the durable group commit, the answer) with safe-
// mode JSON text pushes from parallel clients:
//
//	go test ./relay/ingress -run '^$' -bench Push -cpu 2
func BenchmarkPush(b *testing.B) {
	e := newRelayEnvCached(&testing.T{}, time.Second)
	tn := e.newTenant(tenant.EncryptSafe, tenant.FormatJSON)
	p := pusher(&testing.T{}, tn)
	reqs := make([]*wechat.PushRequest, b.N)
	for i := range reqs {
		r, err := p.Push(wechat.TextMessage(wechat.FormatJSON, header(1714037059), "hello there", int64(1e18)+int64(i)), 1714037059, "1")
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = r
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var next atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := reqs[next.Add(1)-1]
			resp, err := client.Post(e.url+"/wx/"+string(tn.ID)+"?"+r.RawQuery(), r.ContentType, bytes.NewReader(r.Body))
			if err != nil {
				b.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "success" {
				b.Errorf("answer %d %q", resp.StatusCode, body)
				return
			}
		}
	})
}
