package tenant

import (
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

var (
	appIDPattern      = regexp.MustCompile(`^wx[0-9a-fA-F]{16}$`)
	pushTokenPattern  = regexp.MustCompile(`^[A-Za-z0-9]{3,32}$`) // the console's rule
	aesKeyPattern     = regexp.MustCompile(`^[A-Za-z0-9]{43}$`)
	originalIDPattern = regexp.MustCompile(`^gh_[0-9A-Za-z]{1,32}$`)
	// An AppSecret, a mini program's or a third-party platform's, is 32
	// hex characters as WeChat issues it; a value of another shape was
	// mistyped or is something else (the Token, the EncodingAESKey), and
	// would fail only at the first token fetch.
	appSecretPattern = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
)

// validate checks a complete tenant, naming the first wrong field, or
// every required field left out when there are several.
func (t *Tenant) validate(allowPrivateWebhooks bool) error {
	if missing := t.missingFields(); len(missing) > 1 {
		return missing
	}
	if err := validateDisplayName(t.DisplayName); err != nil {
		return err
	}
	switch {
	case t.AppID == "":
		return fieldErr("appid", "is required")
	case !appIDPattern.MatchString(t.AppID):
		return fieldErr("appid", "must be wx followed by 16 hex characters")
	}
	var err error
	if t.ComponentID != "" {
		err = t.validateOfComponent()
	} else {
		err = t.validateOwnKeys()
	}
	if err != nil {
		return err
	}
	switch {
	case t.OriginalID != "" && !originalIDPattern.MatchString(t.OriginalID):
		return fieldErr("original_id", "must look like gh_ followed by letters or digits")
	case t.ReplyMode < ReplySuccess || t.ReplyMode > ReplyTransferCustomerService:
		return fieldErr("reply_mode", "must be one of REPLY_MODE_SUCCESS, REPLY_MODE_TRANSFER_CUSTOMER_SERVICE")
	case t.State < StateActive || t.State > StateDisabled:
		return fieldErr("state", "must be one of STATE_ACTIVE, STATE_DISABLED")
	case t.TokenEndpoint < TokenEndpointUnspecified || t.TokenEndpoint > TokenClassic:
		return fieldErr("token_endpoint", "must be one of TOKEN_ENDPOINT_STABLE, TOKEN_ENDPOINT_CLASSIC")
	case t.PushSilenceAlert != 0 && (t.PushSilenceAlert < MinPushSilenceAlert || t.PushSilenceAlert > MaxPushSilenceAlert):
		return fieldErr("push_silence_alert", "must be 0 (off) or between %s and %s, in whole seconds", MinPushSilenceAlert, MaxPushSilenceAlert)
	case t.PushSilenceAlert%time.Second != 0:
		return fieldErr("push_silence_alert", "must be whole seconds")
	}
	return ValidateWebhookURL(t.WebhookURL, allowPrivateWebhooks)
}

// missingFields are the required fields t leaves empty, in the order
// validate checks them.
func (t *Tenant) missingFields() FieldErrors {
	var missing FieldErrors
	need := func(field, value string) {
		if value == "" {
			missing = append(missing, &FieldError{Field: field, Reason: "is required"})
		}
	}
	need("appid", t.AppID)
	if t.ComponentID == "" {
		need("app_secret", t.Secrets.AppSecret)
		need("token", t.Secrets.Token)
		if t.EncryptMode != EncryptPlaintext {
			need("encoding_aes_key", t.Secrets.EncodingAESKey)
		}
	}
	need("webhook_url", t.WebhookURL)
	return missing
}

// validateOwnKeys checks the mini program's own secrets, mode and format,
// which a tenant not of a component holds.
func (t *Tenant) validateOwnKeys() error {
	if err := validateKeys("app_secret", t.Secrets.AppSecret, t.Secrets.Token, "the mini-program console"); err != nil {
		return err
	}
	switch {
	case t.EncryptMode < EncryptPlaintext || t.EncryptMode > EncryptSafe:
		return fieldErr("encrypt_mode", "must be one of ENCRYPT_MODE_PLAINTEXT, ENCRYPT_MODE_COMPATIBLE, ENCRYPT_MODE_SAFE")
	case t.DataFormat < FormatJSON || t.DataFormat > FormatXML:
		return fieldErr("data_format", "must be one of DATA_FORMAT_JSON, DATA_FORMAT_XML")
	}
	if t.EncryptMode != EncryptPlaintext || t.Secrets.EncodingAESKey != "" {
		return validateAESKey(t.Secrets.EncodingAESKey, "is required unless encrypt_mode is ENCRYPT_MODE_PLAINTEXT")
	}
	return nil
}

// validateDisplayName checks a tenant's or a component's display name.
func validateDisplayName(name string) error {
	switch {
	case utf8.RuneCountInString(name) > 200:
		return fieldErr("display_name", "must be at most 200 characters")
	case strings.ContainsFunc(name, unicode.IsControl):
		return fieldErr("display_name", "must not contain control characters (NUL, line breaks, tabs)")
	}
	return nil
}

// validateKeys checks an AppSecret (under the field secretField) and a
// push Token, as console (where they are set) requires them.
func validateKeys(secretField, secret, token, console string) error {
	switch {
	case secret == "":
		return fieldErr(secretField, "is required")
	case !appSecretPattern.MatchString(secret):
		return fieldErr(secretField, "must be 32 hex characters, as %s issues it (%d characters given)", console, utf8.RuneCountInString(secret))
	case token == "":
		return fieldErr("token", "is required")
	case !pushTokenPattern.MatchString(token):
		return fieldErr("token", "must be 3 to 32 letters or digits, as %s requires", console)
	}
	return nil
}

// validateAESKey checks an EncodingAESKey; missing says why it is needed.
func validateAESKey(key, missing string) error {
	switch {
	case key == "":
		return fieldErr("encoding_aes_key", "%s", missing)
	case !aesKeyPattern.MatchString(key):
		return fieldErr("encoding_aes_key", "must be exactly 43 letters or digits")
	}
	return nil
}

// ValidAppID reports whether appid has the shape of a mini program's
// appid: wx and 16 hex characters.
func ValidAppID(appid string) bool { return appIDPattern.MatchString(appid) }

// validateOfComponent checks that a component's tenant holds none of
// the mini program's secrets, and has the open platform's mode and format.
func (t *Tenant) validateOfComponent() error {
	for _, f := range []struct{ name, value string }{
		{"app_secret", t.Secrets.AppSecret}, {"token", t.Secrets.Token}, {"encoding_aes_key", t.Secrets.EncodingAESKey},
	} {
		if f.value != "" {
			return fieldErr(f.name, "is not given for a tenant of a component (component_id): the component's keys serve it, and no secret of the mini-program is handed over")
		}
	}
	switch {
	case !ValidComponentID(t.ComponentID):
		return fieldErr("component_id", "is not a component id (cp_…)")
	case t.EncryptMode != EncryptSafe:
		return fieldErr("encrypt_mode", "is not given for a tenant of a component: the open platform pushes in safe mode")
	case t.DataFormat != FormatXML:
		return fieldErr("data_format", "is not given for a tenant of a component: the open platform pushes XML")
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// ValidateWebhookURL checks that raw is an absolute https URL (http too when
// private webhooks are allowed) whose host is not obviously private. The
// address actually dialled is checked again at delivery, since a public name
// may resolve to a private address.
func ValidateWebhookURL(raw string, allowPrivate bool) error {
	const field = "webhook_url"
	switch {
	case raw == "":
		return fieldErr(field, "is required")
	case len(raw) > MaxWebhookURLBytes:
		return fieldErr(field, "is %d bytes long, over the limit of %d", len(raw), MaxWebhookURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque != "") {
		// "not a url" parses as a relative path, "shop.example.com:443"
		// as a scheme with an opaque part: neither is what was meant.
		return fieldErr(field, "does not parse as an absolute URL such as https://shop.example.com/wechat/events")
	}
	if strings.ContainsFunc(raw, isSpaceOrControl) {
		// Go's parser keeps a space in the query, but an HTTP request line
		// cannot carry one: every delivery would then fail.
		return fieldErr(field, "must not contain spaces or control characters; percent-encode them (a space is %%20)")
	}
	wanted := "an https URL"
	if allowPrivate {
		wanted = "an http or https URL"
	}
	switch {
	case u.Scheme == "http" && !allowPrivate:
		return fieldErr(field, "must use https (plain http is accepted only with WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true)")
	case u.Scheme != "https" && u.Scheme != "http":
		return fieldErr(field, "must be %s, not %s:", wanted, u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return fieldErr(field, "must name a host")
	case u.User != nil:
		return fieldErr(field, "must not carry credentials; verify the webhook-signature header instead")
	case u.Fragment != "":
		return fieldErr(field, "must not have a fragment")
	}
	if addr, ok := legacyIPv4(u.Hostname()); ok {
		// Refused even where private webhooks are allowed: resolvers
		// disagree on these (glibc and browsers read an address, Go's
		// resolver a name), so the URL would mean different hosts to
		// different readers.
		return fieldErr(field, "host %q is an IPv4 address in a non-standard form, meaning %s; write it as four decimal numbers, or use a host name", u.Hostname(), addr)
	}
	if !allowPrivate && isPrivateHost(u.Hostname()) {
		return fieldErr(field, "points at a loopback or private address; set WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true to allow it")
	}
	return nil
}

// MaxWebhookURLBytes bounds a webhook URL: every delivery sends it and
// every tenant read carries it. Browsers and proxies commonly stop near
// 8 KiB for a whole request line; a webhook address needs far less.
const MaxWebhookURLBytes = 2048

// legacyIPv4 reads host as the IPv4 address that inet_aton and the WHATWG
// URL standard see in it when it is not the usual dotted quad: one to four
// parts, each decimal, octal (a leading 0) or hex (0x), the last filling
// the remaining bytes. 2130706433, 0x7f000001, 0177.0.0.1, 127.1 and 0 all
// name a loopback or unspecified address this way. ok is false for a
// dotted quad in the usual form and for anything that is no such address.
func legacyIPv4(host string) (addr netip.Addr, ok bool) {
	h := strings.TrimSuffix(host, ".")
	if _, err := netip.ParseAddr(h); err == nil || h == "" {
		return netip.Addr{}, false
	}
	parts := strings.Split(h, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var n uint64
	for i, p := range parts {
		v, err := parseIPv4Part(p)
		if err != nil {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if v > 255 {
				return netip.Addr{}, false
			}
			n = n<<8 | v
			continue
		}
		rest := uint(8 * (5 - len(parts))) // bits the last part fills
		if v >= 1<<rest {
			return netip.Addr{}, false
		}
		n = n<<rest | v
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func parseIPv4Part(p string) (uint64, error) {
	switch {
	case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
		if p == "0x" || p == "0X" {
			return 0, nil
		}
		return strconv.ParseUint(p[2:], 16, 32)
	case len(p) > 1 && p[0] == '0':
		return strconv.ParseUint(p[1:], 8, 32)
	default:
		return strconv.ParseUint(p, 10, 32)
	}
}

// isPrivateHost recognises hosts that are private without a DNS lookup:
// localhost names and literal addresses outside the public internet.
func isPrivateHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasSuffix(h, ".internal") {
		return true
	}
	if addr, err := netip.ParseAddr(h); err == nil { // zoned IPv6 included
		return !IsPublicAddr(addr)
	}
	return false
}

// nonPublic lists the ranges a webhook must never reach: loopback, private,
// link-local, CGNAT, multicast, documentation, benchmarking and other
// reserved or unspecified ranges of IPv4 and IPv6.
var nonPublic = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
		"fc00::/7", "fe80::/10", "ff00::/8",
		// IPv4-compatible (::a.b.c.d, deprecated; ::7f00:1 is 127.0.0.1 to
		// stacks that still route it), SIIT's IPv4-translated form, and
		// site-local (fec0::/10, deprecated but still routed by some).
		"::/96", "::ffff:0:0:0/96", "fec0::/10",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// IsPublicAddr reports whether a webhook may be delivered to addr.
// IPv4-mapped, NAT64 and 6to4 IPv6 forms are judged by the IPv4 address
// inside.
func IsPublicAddr(addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	// A zone (fe80::1%eth0) would make every prefix test below fail.
	addr = addr.WithZone("").Unmap()
	if nat64.Contains(addr) {
		b := addr.As16()
		addr = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	} else if sixToFour.Contains(addr) {
		// 6to4 relays reach the IPv4 address in bits 16 to 48:
		// 2002:7f00:1::1 is a way to 127.0.0.1.
		b := addr.As16()
		addr = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
	}
	for _, p := range nonPublic {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// The range of Tenant.PushSilenceAlert: under a minute, WeChat's own quiet
// moments would raise it; over 30 days, pushes older than the retention
// would be needed to tell.
const (
	MinPushSilenceAlert = time.Minute
	MaxPushSilenceAlert = 30 * 24 * time.Hour
)
