package main

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxrelay/wxrelay/api"
	"github.com/wxrelay/wxrelay/api/throttle"
	"github.com/wxrelay/wxrelay/api/wxapi"
	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/relay/ingress"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/tenant"
)

// config is everything wxrelay can be told, from flags and WXRELAY_*
// variables. Defaults let `wxrelay serve` run with no configuration.
type config struct {
	DB                   string
	HTTPAddr             string
	GRPCAddr             string
	PublicURL            string
	WeChatAPI            string
	WeChatMP             string
	SecretKey            string // base64; empty means the key file beside a SQLite DB
	AllowPrivateWebhooks bool
	RetrySchedule        []time.Duration
	DeliveryTimeout      time.Duration
	Retention            time.Duration // delivered events
	FailedRetention      time.Duration
	DebugAddr            string
	MetricsAddr          string // where /metrics is served; "" for nowhere
	LogLevel             slog.Level
	PushSecretGrace      time.Duration    // previous push Token/EncodingAESKey still accepted
	PushMaxSkew          time.Duration    // how far a push's timestamp may be from now
	WXAPIAddr            string           // a listener of its own for the WeChat-compatible API; "" for none
	WXAPIRate            float64          // per-tenant calls a second on the compatible API; 0 for no limit
	TenantWriteRate      float64          // per-tenant redeliveries, test events and recoveries a second; 0 for no limit
	HealthInterval       time.Duration    // how often tenant health is computed (and alerts sent)
	AlertWebhook         string           // the operator's alert webhook; "" for none
	AlertWebhookSecret   string           // whsec_…, signs the alerts
	TrustedProxies       throttle.Proxies // whose X-Forwarded-For names the client
	DBMaxConns           int              // PostgreSQL connections this process opens at most
	MallocKeep           int              // freed C heap glibc keeps for reuse, bytes; 0 leaves glibc's default
}

// flagSet binds the flags every command shares, with defaults taken from
// the environment. Commands add their own flags before parsing.
type flagSet struct {
	*flag.FlagSet
	cfg    *config
	getenv func(string) string
	envs   map[string]string // flag name → env variable
}

func newFlagSet(name string, getenv func(string) string, stderr io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet("wxrelay "+name, flag.ContinueOnError), cfg: &config{}, getenv: getenv, envs: map[string]string{}}
	fs.SetOutput(stderr)
	fs.StringVar(&fs.cfg.DB, "db", "wxrelay.db", "a SQLite file path, or a postgres:// URL for scale-out (WXRELAY_DB)")
	fs.StringVar(&fs.cfg.SecretKey, "secret-key", "", "32 bytes, base64: seals tenant secrets and signs tokens; default: a key file beside a SQLite DB (WXRELAY_SECRET_KEY)")
	fs.IntVar(&fs.cfg.DBMaxConns, "db-max-conns", store.DefaultMaxConns, "PostgreSQL connections this process opens at most, at least 3; every replica's count against the server's max_connections (WXRELAY_DB_MAX_CONNS)")
	fs.bindEnv("db-max-conns", "WXRELAY_DB_MAX_CONNS")
	fs.bindEnv("db", "WXRELAY_DB")
	fs.bindEnv("secret-key", "WXRELAY_SECRET_KEY")
	return fs
}

// addServeFlags binds the flags only serve needs.
func (fs *flagSet) addServeFlags() {
	c := fs.cfg
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "push endpoints, REST, /healthz, /readyz, /openapi.json (WXRELAY_HTTP_ADDR)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", defaultMetricsAddr, "where Prometheus metrics are served, at /metrics; their series name every tenant, so :9464 means 127.0.0.1:9464, 0.0.0.0:9464 (every interface, as in a cluster) is served with a note, and \"\" serves none (WXRELAY_METRICS_ADDR)")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", ":9090", "gRPC with server reflection (WXRELAY_GRPC_ADDR)")
	fs.StringVar(&c.PublicURL, "public-url", "http://localhost:8080", "base of the push URLs handed out (WXRELAY_PUBLIC_URL)")
	fs.StringVar(&c.WeChatAPI, "wechat-api", "https://api.weixin.qq.com", "base URL of the WeChat API (WXRELAY_WECHAT_API)")
	fs.StringVar(&c.WeChatMP, "wechat-mp", "https://mp.weixin.qq.com", "base URL of WeChat's consent page for third-party platforms (WXRELAY_WECHAT_MP)")
	fs.BoolVar(&c.AllowPrivateWebhooks, "allow-private-webhooks", false, "allow webhook URLs on loopback and private addresses (WXRELAY_ALLOW_PRIVATE_WEBHOOKS)")
	c.RetrySchedule = defaultRetrySchedule
	fs.Func("retry-schedule", "webhook delivery delays, comma-separated Go durations (WXRELAY_RETRY_SCHEDULE)\n(default 0s,5s,5m,30m,2h,5h,10h,10h)", func(s string) error {
		d, err := parseSchedule(s)
		c.RetrySchedule = d
		return err
	})
	fs.DurationVar(&c.DeliveryTimeout, "delivery-timeout", 15*time.Second, "how long one webhook delivery attempt may take (WXRELAY_DELIVERY_TIMEOUT)")
	c.Retention, c.FailedRetention = 7*24*time.Hour, 30*24*time.Hour
	fs.Func("retention", "how long delivered events are kept, with their attempts, at least 1h (WXRELAY_RETENTION)\n(default 168h)", durationFlag(&c.Retention))
	fs.Func("failed-retention", "how long failed events are kept, to be redelivered, at least 1h (WXRELAY_FAILED_RETENTION)\n(default 720h)", durationFlag(&c.FailedRetention))
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "if set, serve Go's /debug/pprof profiles here; :6060 means 127.0.0.1:6060, and 0.0.0.0:6060 (every interface) is served with a warning (WXRELAY_DEBUG_ADDR)")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "debug, info, warn or error (WXRELAY_LOG_LEVEL)")
	fs.DurationVar(&c.PushSecretGrace, "push-secret-grace", tenant.DefaultPushSecretGrace, "after a change of a tenant's push Token or EncodingAESKey, how long pushes made with the previous ones are still accepted (WXRELAY_PUSH_SECRET_GRACE)")
	fs.DurationVar(&c.PushMaxSkew, "push-max-skew", ingress.DefaultMaxSkew, "refuse pushes whose timestamp is further than this from the relay's clock, at most 30m (WXRELAY_PUSH_MAX_SKEW)")
	fs.StringVar(&c.WXAPIAddr, "wxapi-addr", "", "if set, also serve the WeChat-compatible API at the root of this address, for SDKs that can change only the API host (WXRELAY_WXAPI_ADDR)")
	fs.Float64Var(&c.WXAPIRate, "wxapi-rate", wxapi.DefaultRate, "calls a second each tenant may make on the WeChat-compatible API, bursts of twice that; 0 for no limit (WXRELAY_WXAPI_RATE)")
	fs.Float64Var(&c.TenantWriteRate, "tenant-write-rate", api.DefaultTenantWriteRate, "redeliveries, test events and recoveries a second each tenant's API key may ask for, bursts of ten times that; 0 for no limit (WXRELAY_TENANT_WRITE_RATE)")
	fs.DurationVar(&c.HealthInterval, "health-interval", 15*time.Second, "how often every tenant's health is computed and health alerts are sent, 1s to 5m (WXRELAY_HEALTH_INTERVAL)")
	fs.StringVar(&c.AlertWebhook, "alert-webhook", "", "if set, POST every tenant health transition here, signed with Standard Webhooks (WXRELAY_ALERT_WEBHOOK)")
	c.TrustedProxies = throttle.DefaultProxies
	fs.Func("trusted-proxies", "addresses or CIDR prefixes of the reverse proxies in front of the relay, whose X-Forwarded-For names the client; failed authentications are counted by client address; \"none\" trusts none (WXRELAY_TRUSTED_PROXIES)\n(default 127.0.0.0/8,::1/128)", func(s string) error {
		p, err := throttle.ParseProxies(s)
		c.TrustedProxies = p
		return err
	})
	fs.IntVar(&c.MallocKeep, "malloc-keep", 4<<20, "bytes of freed C heap glibc keeps for reuse rather than return to the kernel: SQLite's temporary b-trees then need no fresh page faults at every statement; 0 leaves glibc's default (WXRELAY_MALLOC_KEEP)")
	fs.StringVar(&c.AlertWebhookSecret, "alert-webhook-secret", "", "the alert webhook's signing secret, whsec_ and base64; required with --alert-webhook (WXRELAY_ALERT_WEBHOOK_SECRET)")
	for name, env := range map[string]string{
		"health-interval": "WXRELAY_HEALTH_INTERVAL", "alert-webhook": "WXRELAY_ALERT_WEBHOOK",
		"alert-webhook-secret": "WXRELAY_ALERT_WEBHOOK_SECRET", "wxapi-addr": "WXRELAY_WXAPI_ADDR",
		"wxapi-rate": "WXRELAY_WXAPI_RATE", "http-addr": "WXRELAY_HTTP_ADDR", "grpc-addr": "WXRELAY_GRPC_ADDR",
		"tenant-write-rate": "WXRELAY_TENANT_WRITE_RATE",
		"public-url":        "WXRELAY_PUBLIC_URL",
		"wechat-api":        "WXRELAY_WECHAT_API", "wechat-mp": "WXRELAY_WECHAT_MP", "allow-private-webhooks": "WXRELAY_ALLOW_PRIVATE_WEBHOOKS",
		"retry-schedule": "WXRELAY_RETRY_SCHEDULE", "log-level": "WXRELAY_LOG_LEVEL",
		"delivery-timeout": "WXRELAY_DELIVERY_TIMEOUT", "debug-addr": "WXRELAY_DEBUG_ADDR",
		"retention": "WXRELAY_RETENTION", "failed-retention": "WXRELAY_FAILED_RETENTION",
		"push-secret-grace": "WXRELAY_PUSH_SECRET_GRACE", "push-max-skew": "WXRELAY_PUSH_MAX_SKEW",
		"trusted-proxies": "WXRELAY_TRUSTED_PROXIES", "metrics-addr": "WXRELAY_METRICS_ADDR", "malloc-keep": "WXRELAY_MALLOC_KEEP",
	} {
		fs.bindEnv(name, env)
	}
}

func (fs *flagSet) bindEnv(name, env string) { fs.envs[name] = env }

// parse applies the environment, then the flags (flags win), then checks
// the result. Every error names the flag and variable at fault.
func (fs *flagSet) parse(args []string) (*config, error) {
	for name, env := range fs.envs {
		if v := fs.getenv(env); v != "" {
			if err := fs.Set(name, v); err != nil {
				return nil, fmt.Errorf("%s=%q: %v", env, v, err)
			}
		}
	}
	// The flag package would print the error and the whole usage; one
	// line that names the problem and where to look is easier to read.
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(out, "usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		return nil, errUsage
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v (see '%s -h')", errBadFlags, err, fs.Name())
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return fs.cfg, fs.cfg.validate()
}

var defaultRetrySchedule = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// durationFlag parses a flag's Go duration into d, with an error that
// shows the form wanted (the flag package says only "parse error").
func durationFlag(d *time.Duration) func(string) error {
	return func(s string) error {
		v, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			hint := ""
			if strings.HasSuffix(strings.TrimSpace(s), "d") {
				hint = " (there is no d for days: 24h is one)"
			}
			return fmt.Errorf("%q is not a Go duration such as 168h or 90m%s", s, hint)
		}
		*d = v
		return nil
	}
}

func parseSchedule(s string) ([]time.Duration, error) {
	var ds []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("%q is not a Go duration such as 5s or 2h", strings.TrimSpace(part))
		}
		if d < 0 {
			return nil, fmt.Errorf("%s: delays must not be negative", d)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// validate checks the settings that flags alone cannot.
func (c *config) validate() error {
	if _, _, err := store.ParseDSN(c.DB); err != nil {
		return fmt.Errorf("--db / WXRELAY_DB: %w", err)
	}
	if c.DBMaxConns < 3 {
		return fmt.Errorf("--db-max-conns / WXRELAY_DB_MAX_CONNS: %d is under 3 (a pool for writes, one for relaxed writes, one for notices)", c.DBMaxConns)
	}
	if c.SecretKey != "" {
		if _, err := decodeKey(c.SecretKey); err != nil {
			return fmt.Errorf("--secret-key / WXRELAY_SECRET_KEY: %w", err)
		}
	}
	return nil
}

// validateServe checks what serve needs beyond the shared settings.
func (c *config) validateServe() error {
	for _, a := range []struct{ flag, env, addr string }{
		{"--http-addr", "WXRELAY_HTTP_ADDR", c.HTTPAddr},
		{"--grpc-addr", "WXRELAY_GRPC_ADDR", c.GRPCAddr},
	} {
		if err := checkAddr(a.addr); err != nil {
			return fmt.Errorf("%s / %s: %w", a.flag, a.env, err)
		}
	}
	if err := checkBaseURL(c.PublicURL); err != nil {
		return fmt.Errorf("--public-url / WXRELAY_PUBLIC_URL: %w", err)
	}
	if err := checkBaseURL(c.WeChatAPI); err != nil {
		return fmt.Errorf("--wechat-api / WXRELAY_WECHAT_API: %w", err)
	}
	if err := checkBaseURL(c.WeChatMP); err != nil {
		return fmt.Errorf("--wechat-mp / WXRELAY_WECHAT_MP: %w", err)
	}
	if c.MallocKeep < 0 || c.MallocKeep > 1<<30 {
		return fmt.Errorf("--malloc-keep / WXRELAY_MALLOC_KEEP: %d is outside 0 (glibc's default) to 1 GiB", c.MallocKeep)
	}
	if c.DebugAddr != "" {
		if err := checkAddr(c.DebugAddr); err != nil {
			return fmt.Errorf("--debug-addr / WXRELAY_DEBUG_ADDR: %w", err)
		}
	}
	if c.MetricsAddr != "" {
		if err := checkAddr(c.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr / WXRELAY_METRICS_ADDR: %w", err)
		}
	}
	if c.WXAPIAddr != "" {
		if err := checkAddr(c.WXAPIAddr); err != nil {
			return fmt.Errorf("--wxapi-addr / WXRELAY_WXAPI_ADDR: %w", err)
		}
	}
	if c.WXAPIRate < 0 || math.IsNaN(c.WXAPIRate) || math.IsInf(c.WXAPIRate, 0) {
		return fmt.Errorf("--wxapi-rate / WXRELAY_WXAPI_RATE: %g must be 0 (no limit) or a positive number of calls a second", c.WXAPIRate)
	}
	if c.TenantWriteRate < 0 || math.IsNaN(c.TenantWriteRate) || math.IsInf(c.TenantWriteRate, 0) {
		return fmt.Errorf("--tenant-write-rate / WXRELAY_TENANT_WRITE_RATE: %g must be 0 (no limit) or a positive number of writes a second", c.TenantWriteRate)
	}
	if c.HealthInterval < time.Second || c.HealthInterval > 5*time.Minute {
		return fmt.Errorf("--health-interval / WXRELAY_HEALTH_INTERVAL: %s is outside 1s..5m", c.HealthInterval)
	}
	if err := c.validateAlertWebhook(); err != nil {
		return err
	}
	if c.PushSecretGrace < 0 {
		return errors.New("--push-secret-grace / WXRELAY_PUSH_SECRET_GRACE: must not be negative")
	}
	if c.PushMaxSkew < time.Minute || c.PushMaxSkew > maxPushSkew {
		// Under a minute, a relay whose clock is a little off would refuse
		// WeChat's own pushes; the ceiling keeps every push that passes
		// within the retention (minRetention), so a replay cannot outlive
		// the de-duplication record that would catch it.
		return fmt.Errorf("--push-max-skew / WXRELAY_PUSH_MAX_SKEW: %s is outside 1m..%s", c.PushMaxSkew, maxPushSkew)
	}
	if c.DeliveryTimeout <= 0 {
		return errors.New("--delivery-timeout / WXRELAY_DELIVERY_TIMEOUT: must be positive")
	}
	if len(c.RetrySchedule) == 0 {
		return errors.New("--retry-schedule / WXRELAY_RETRY_SCHEDULE: needs at least one delay")
	}
	for _, r := range []struct {
		flag, env string
		keep      time.Duration
	}{
		{"--retention", "WXRELAY_RETENTION", c.Retention},
		{"--failed-retention", "WXRELAY_FAILED_RETENTION", c.FailedRetention},
	} {
		if r.keep < minRetention {
			return fmt.Errorf("%s / %s: %s is under the minimum of %s: events carry their de-duplication keys, "+
				"and a push that WeChat retries after its event is pruned would be delivered twice", r.flag, r.env, r.keep, minRetention)
		}
	}
	return nil
}

// validateAlertWebhook checks the alert webhook and its secret together:
// a secret with no webhook is as likely a mistake as a webhook without.
// The secret is never quoted.
func (c *config) validateAlertWebhook() error {
	if c.AlertWebhook == "" {
		if c.AlertWebhookSecret != "" {
			return errors.New("--alert-webhook-secret / WXRELAY_ALERT_WEBHOOK_SECRET is set but --alert-webhook / WXRELAY_ALERT_WEBHOOK is not")
		}
		return nil
	}
	if u, err := url.Parse(c.AlertWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("--alert-webhook / WXRELAY_ALERT_WEBHOOK: not an absolute http or https URL")
	}
	if c.AlertWebhookSecret == "" {
		return errors.New("--alert-webhook-secret / WXRELAY_ALERT_WEBHOOK_SECRET: required with --alert-webhook; make one with: echo whsec_$(openssl rand -base64 32)")
	}
	if _, err := delivery.Sign([]string{c.AlertWebhookSecret}, "probe", time.Unix(0, 0), nil); err != nil {
		return fmt.Errorf("--alert-webhook-secret / WXRELAY_ALERT_WEBHOOK_SECRET: %w", err)
	}
	return nil
}

// defaultMetricsAddr is loopback: the metrics name every tenant. 9464 is
// the port Prometheus exporters of OpenTelemetry use.
const defaultMetricsAddr = "127.0.0.1:9464"

// minRetention is the shortest retention accepted. WeChat retries a push
// within seconds to minutes, and the event's row is what recognises the
// retry: an hour is far beyond that, and still short enough for tests.
const minRetention = time.Hour

// maxPushSkew is the widest --push-max-skew: well under minRetention.
const maxPushSkew = 30 * time.Minute

func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (for example :8080 or 127.0.0.1:8080)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port number", addr)
	}
	return nil
}

func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http or https URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not have a query or fragment", raw)
	}
	return nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("must be 32 bytes, base64-encoded; this one is %d bytes (make one with: openssl rand -base64 32)", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("is not base64 (make one with: openssl rand -base64 32)")
}

// keys are the independent keys derived from the one secret key, so that
// sealing and token signing never share key material.
type keys struct {
	seal, jwt []byte
}

func deriveKeys(secret []byte) (keys, error) {
	seal, err := hkdf.Key(sha256.New, secret, nil, "wxrelay seal v1", 32)
	if err != nil {
		return keys{}, err
	}
	jwt, err := hkdf.Key(sha256.New, secret, nil, "wxrelay jwt v1", 32)
	if err != nil {
		return keys{}, err
	}
	return keys{seal: seal, jwt: jwt}, nil
}

// redactURL keeps what a URL may carry of a credential (a password, a
// token in its query) out of logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return ""
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	return u.Redacted()
}

// durations writes ds as the --retry-schedule flag takes them.
func durations(ds []time.Duration) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return strings.Join(out, ",")
}

// LogValue keeps the secret key out of logs.
func (c config) LogValue() slog.Value {
	key := "key file"
	if c.SecretKey != "" {
		key = "set"
	}
	db := c.DB
	if u, err := url.Parse(c.DB); err == nil && u.User != nil {
		db = u.Redacted()
	}
	return slog.GroupValue(
		slog.String("db", db), slog.Int("db_max_conns", c.DBMaxConns), slog.String("http_addr", c.HTTPAddr), slog.String("grpc_addr", c.GRPCAddr),
		slog.String("public_url", c.PublicURL), slog.String("wechat_api", c.WeChatAPI), slog.String("wechat_mp", c.WeChatMP),
		slog.String("secret_key", key), slog.Bool("allow_private_webhooks", c.AllowPrivateWebhooks),
		// Durations as people write them (168h0m0s), not nanoseconds,
		// which is how the JSON handler writes a slog.Duration.
		slog.String("retry_schedule", durations(c.RetrySchedule)),
		slog.String("retention", c.Retention.String()), slog.String("failed_retention", c.FailedRetention.String()),
		slog.String("metrics_addr", c.MetricsAddr), slog.String("wxapi_addr", c.WXAPIAddr), slog.Float64("wxapi_rate", c.WXAPIRate),
		slog.Float64("tenant_write_rate", c.TenantWriteRate),
		slog.String("health_interval", c.HealthInterval.String()), slog.String("alert_webhook", redactURL(c.AlertWebhook)),
		slog.Any("trusted_proxies", c.TrustedProxies),
	)
}
