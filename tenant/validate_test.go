package tenant

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestIsPublicAddr(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true}, {"1.1.1.1", true}, {"2606:4700::1111", true},
		{"127.0.0.1", false}, {"10.1.2.3", false}, {"172.16.0.1", false}, {"172.31.255.255", false},
		{"192.168.1.1", false}, {"169.254.169.254", false}, {"100.64.0.1", false}, {"0.0.0.0", false},
		{"224.0.0.1", false}, {"240.0.0.1", false}, {"255.255.255.255", false}, {"192.0.2.1", false},
		{"::1", false}, {"::", false}, {"fc00::1", false}, {"fd12::1", false}, {"fe80::1", false},
		{"fe80::1%eth0", false}, {"ff02::1", false}, {"::ffff:127.0.0.1", false}, {"::ffff:8.8.8.8", true},
		{"64:ff9b::a00:1", false}, {"2001:db8::1", false},
		{"::7f00:1", false}, {"::8.8.8.8", false}, {"2002:7f00:1::1", false}, {"2002:a00:1::1", false},
		{"2002:808:808::1", true}, {"fec0::1", false}, {"::ffff:0:7f00:1", false},
	} {
		if got := IsPublicAddr(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("IsPublicAddr(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if IsPublicAddr(netip.Addr{}) {
		t.Errorf("the zero Addr is public")
	}
}

func TestValidateWebhookURL(t *testing.T) {
	for _, tt := range []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"not a url", false, false},
		{"hooks.example.com/x", true, false},
		{"https://hooks.example.com/x", false, true},
		{"http://hooks.example.com/x", false, false},
		{"http://hooks.example.com/x", true, true},
		{"https://127.0.0.1/x", false, false},
		{"https://127.0.0.1/x", true, true},
		{"https://[fe80::1%25eth0]/x", false, false},
		{"https://LOCALHOST/x", false, false},
		{"https://api.localhost/x", false, false},
		{"https://user:pw@hooks.example.com/x", false, false},
		{"https://hooks.example.com/x#frag", false, false},
		{"ftp://hooks.example.com/x", true, false},
		{"", false, false},
		{"https://[::7f00:1]/", false, false},
		{"https://[2002:7f00:1::1]/", false, false},
		{"https://[fec0::1]/", false, false},
		{"https://hooks.example.com/x?a=b c", true, false},
		{"https://hooks.example.com/x?a=b%20c", true, true},
		{"https://hooks.example.com/x\tab", true, false},
		{"https://hooks.example.com/x\n", true, false},
		{"https://hooks.example.com/" + strings.Repeat("a", MaxWebhookURLBytes), true, false},
		{"https://hooks.example.com/" + strings.Repeat("a", MaxWebhookURLBytes-len("https://hooks.example.com/")), true, true},
	} {
		err := ValidateWebhookURL(tt.url, tt.allowPrivate)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateWebhookURL(%q, %v) = %v, want ok=%v", tt.url, tt.allowPrivate, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("error %v does not match ErrInvalid", err)
		}
	}
}

// TestWebhookURLMessages: each refusal says what is wrong with this URL,
// and what is accepted under the relay's settings.
func TestWebhookURLMessages(t *testing.T) {
	for _, tt := range []struct {
		url          string
		allowPrivate bool
		want         string
	}{
		{"not a url", false, "webhook_url: does not parse as an absolute URL such as https://shop.example.com/wechat/events"},
		{"not a url", true, "webhook_url: does not parse as an absolute URL such as https://shop.example.com/wechat/events"},
		{"shop.example.com:8443/x", true, "webhook_url: does not parse as an absolute URL such as https://shop.example.com/wechat/events"},
		{"%zz", false, "webhook_url: does not parse as an absolute URL such as https://shop.example.com/wechat/events"},
		{"ftp://hooks.example.com/x", false, "webhook_url: must be an https URL, not ftp:"},
		{"ftp://hooks.example.com/x", true, "webhook_url: must be an http or https URL, not ftp:"},
		{"http://hooks.example.com/x", false, "webhook_url: must use https (plain http is accepted only with WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true)"},
		{"", true, "webhook_url: is required"},
		{"https://hooks.example.com/x?q=a b", true, "webhook_url: must not contain spaces or control characters; percent-encode them (a space is %20)"},
		{"https://hooks.example.com/" + strings.Repeat("a", 900<<10), true, "webhook_url: is 921626 bytes long, over the limit of 2048"},
	} {
		err := ValidateWebhookURL(tt.url, tt.allowPrivate)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ValidateWebhookURL(%q, allowPrivate=%v) = %v, want %q", tt.url, tt.allowPrivate, err, tt.want)
		}
	}
}

// Hosts that glibc and browsers read as IPv4 addresses though they are not
// dotted quads: refused at creation with the address they mean, private
// webhooks allowed or not.
func TestWebhookURLInNonStandardIPv4Form(t *testing.T) {
	for host, means := range map[string]string{
		"2130706433": "127.0.0.1", "0x7f000001": "127.0.0.1", "0177.0.0.1": "127.0.0.1",
		"127.1": "127.0.0.1", "0": "0.0.0.0", "0x7f.1": "127.0.0.1", "127.0.1": "127.0.0.1",
		"017700000001": "127.0.0.1", "134744072": "8.8.8.8", "10.0x10.1": "10.16.0.1",
	} {
		for _, allow := range []bool{false, true} {
			err := ValidateWebhookURL("https://"+host+"/hook", allow)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "webhook_url" ||
				!strings.Contains(fe.Reason, "non-standard form, meaning "+means) {
				t.Errorf("https://%s/ (private allowed %v): %v, want a webhook_url error saying it means %s", host, allow, err, means)
			}
		}
	}
	// Names that only look numeric in part, and the usual forms, are not this.
	for _, host := range []string{"8.8.8.8", "hooks.example.com", "1e100.net", "0x.example.com", "99999999999", "1.2.3.4.5"} {
		if _, ok := legacyIPv4(host); ok {
			t.Errorf("legacyIPv4(%q) took it for a non-standard address", host)
		}
	}
}

func TestControlCharactersRefused(t *testing.T) {
	base := Tenant{AppID: "wx0123456789abcdef", EncryptMode: EncryptPlaintext, DataFormat: FormatJSON,
		ReplyMode: ReplySuccess, State: StateActive, WebhookURL: "https://hooks.example.com/x",
		Secrets: Secrets{AppSecret: "5ec2e7005ec2e7005ec2e7005ec2e700", Token: "Token1"}}
	for field, change := range map[string]func(*Tenant){
		"display_name": func(t *Tenant) { t.DisplayName = "shop\x00" },
		"app_secret":   func(t *Tenant) { t.Secrets.AppSecret = "se\x00cret" },
		"token":        func(t *Tenant) { t.Secrets.Token = "Tok\x00en" },
		"original_id":  func(t *Tenant) { t.OriginalID = "gh_\x00" },
		"webhook_url":  func(t *Tenant) { t.WebhookURL = "https://hooks.example.com/\x00" },
	} {
		tn := base
		change(&tn)
		var fe *FieldError
		if err := tn.validate(false); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("NUL in %s: %v, want a FieldError naming it", field, err)
		}
	}
	if err := base.validate(false); err != nil {
		t.Fatalf("the base tenant is invalid: %v", err)
	}
}
