package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// pushLoad plays WeChat against a push URL from several goroutines, each
// push a text message from its own openid, and remembers which pushes were
// answered "success".
type pushLoad struct {
	mu       sync.Mutex
	answered []string // openids, in the order their answers came
	next     atomic.Int64
	stop     atomic.Bool
	wg       sync.WaitGroup
}

func startPushLoad(t *testing.T, pushURL string, p *wechat.Pusher, f wechat.Format, workers int) *pushLoad {
	t.Helper()
	l := &pushLoad{}
	client := &http.Client{Timeout: 5 * time.Second}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for !l.stop.Load() {
				n := l.next.Add(1)
				openid := fmt.Sprintf("o_user_%06d", n)
				msg := wechat.TextMessage(f, wechat.Header{ToUserName: "gh_x", FromUserName: openid, CreateTime: time.Now().Unix()}, "hi", 1e18+n)
				req, err := p.Push(msg, time.Now().Unix(), fmt.Sprint(n))
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := client.Post(pushURL+"?"+req.RawQuery(), req.ContentType, bytes.NewReader(req.Body))
				if err != nil {
					continue // the relay died under this push: it was never answered
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && string(b) == "success" {
					l.mu.Lock()
					l.answered = append(l.answered, openid)
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

// count is how many pushes have been answered success so far.
func (l *pushLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answered)
}

// halt stops the pushers and returns the openids answered success.
func (l *pushLoad) halt() []string {
	l.stop.Store(true)
	l.wg.Wait()
	return l.answered
}
