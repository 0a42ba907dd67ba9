package main

import (
	"net/http"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// wechatIdleConns is how many idle connections to the WeChat API are kept
// for reuse. Every tenant's calls go to the one host, and net/http keeps
// only 2 idle per host by default, so at more than 2 concurrent sends most
// calls dialed a new connection (and left one in TIME_WAIT): 13% of the
// relay's CPU and most of its added latency in BenchmarkSend
// (docs/benchmarks.md, "Sending").
const wechatIdleConns = 128

// wechatHTTP is the HTTP client of the WeChat client: the default
// transport's settings (proxy from the environment, HTTP/2, dial and TLS
// timeouts) with room for wechatIdleConns idle connections, and the
// WeChat client's default deadline per call.
func wechatHTTP() *http.Client { return wechatHTTPWithTimeout(wechat.DefaultTimeout) }

// wechatHTTPWithTimeout is wechatHTTP with another bound on each call.
func wechatHTTPWithTimeout(d time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = wechatIdleConns
	t.MaxIdleConnsPerHost = wechatIdleConns
	return &http.Client{Transport: t, Timeout: d}
}
