package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The send benchmark's baseline forwards each request whole, with the
// fixed token added to what the query already holds.
func TestTokenProxyAddsTheToken(t *testing.T) {
	var gotQuery url.Values
	var gotBody, gotPath string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery, gotPath = r.URL.Query(), r.URL.Path
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
	}))
	defer upstream.Close()
	up, _ := url.Parse(upstream.URL)
	proxy := httptest.NewServer(tokenProxy(up, "TOKEN1"))
	defer proxy.Close()

	resp, err := http.Post(proxy.URL+"/cgi-bin/message/custom/send?type=x&access_token=forged", "application/json", strings.NewReader(`{"touser":"o1"}`))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(answer) != `{"errcode":0,"errmsg":"ok"}` {
		t.Errorf("answer %q, want the upstream's", answer)
	}
	if gotPath != "/cgi-bin/message/custom/send" || gotBody != `{"touser":"o1"}` {
		t.Errorf("upstream got %s %q", gotPath, gotBody)
	}
	if gotQuery["access_token"][0] != "TOKEN1" || len(gotQuery["access_token"]) != 1 || gotQuery.Get("type") != "x" {
		t.Errorf("upstream query %v, want access_token=TOKEN1 alone beside type=x", gotQuery)
	}
}
