package wechat

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for _, tt := range []struct {
		name string
		raw  string
		want string
	}{
		{"classic token", "https://api.weixin.qq.com/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s3cr3t", "https://api.weixin.qq.com/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=REDACTED"},
		{"access token", "https://api.weixin.qq.com/cgi-bin/media/upload?access_token=T0K%2Fen&type=image", "https://api.weixin.qq.com/cgi-bin/media/upload?access_token=REDACTED&type=image"},
		{"escaped name", "http://h/p?access%5Ftoken=T0K", "http://h/p?access%5Ftoken=REDACTED"},
		{"upper case", "http://h/p?SECRET=s3cr3t", "http://h/p?SECRET=REDACTED"},
		{"repeated", "http://h/p?secret=a&secret=b", "http://h/p?secret=REDACTED&secret=REDACTED"},
		{"no value", "http://h/p?secret", "http://h/p?secret=REDACTED"},
		{"fragment kept", "http://h/p?secret=s3cr3t#frag", "http://h/p?secret=REDACTED#frag"},
		{"others kept", "http://h/p?appid=wx1&type=image", "http://h/p?appid=wx1&type=image"},
		{"no query", "http://h/p", "http://h/p"},
		{"password", "http://user:hunter2@h/p?secret=s3cr3t", "http://user:xxxxx@h/p?secret=REDACTED"},
		{"does not parse", "http://h:port\x7f/p?secret=s3cr3t&x=%zz", "http://h:port\x7f/p?secret=REDACTED&x=%zz"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := redactURL(tt.raw); got != tt.want {
				t.Errorf("redactURL(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	cause := errors.New("connection refused")
	err := redact(&url.Error{Op: "Get", URL: "http://h/cgi-bin/token?appid=wx1&secret=s3cr3t", Err: cause})
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("redact kept the secret: %v", err)
	}
	if !errors.Is(err, cause) {
		t.Errorf("redact lost the cause: %v", err)
	}
	if other := errors.New("other"); redact(other) != other {
		t.Error("redact changed an error that is not a *url.Error")
	}
}
