package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wxrelay/wxrelay/tenant"
)

// The tenant commands are the REST API from a shell, for the operator who
// would otherwise assemble curl, a bearer token and grep: each is one call
// (list pages through them all), answered in words, or as the API's JSON
// with --json.
const tenantsUsage = `usage: wxrelay tenants <command> [flags]

commands:
  create                  onboard a mini program (--appid, --app-secret, --token, --webhook; --aes-key and --mode for encrypted pushes)
  list                    every tenant: id, appid, name, state, health and its reasons
  get TENANT_ID           one tenant, as the API answers it (JSON)
  rotate-key TENANT_ID    a new API key; the old one stops working at once
  rotate-secret TENANT_ID a new webhook secret; the old one signs beside it for 24h
  rejections TENANT_ID    the pushes refused over the last 24h, by cause, with what to check
  delete TENANT_ID        remove the tenant and its history

They call the relay at --url (WXRELAY_URL, default http://localhost:8080)
with --admin-token (WXRELAY_ADMIN_TOKEN); without one, run where the relay
runs and they sign a 10-minute token with its key, as admin-token does.
`

// apiRun runs a command over the API; id is its argument (the tenant, the
// operator), if it takes one.
type apiRun func(c *apiClient, id string, stdout io.Writer) error

// apiCommand is a command over the API: bind adds its own flags,
// if any, to fs and returns what runs it with them.
type apiCommand struct {
	bind   func(fs *flagSet) apiRun
	needID bool
}

// noFlags is bind for a command without flags of its own.
func noFlags(run apiRun) func(*flagSet) apiRun { return func(*flagSet) apiRun { return run } }

var tenantCommands = map[string]apiCommand{
	"create":        {bind: createTenantFlags},
	"list":          {bind: noFlags(listTenantsCmd)},
	"get":           {bind: noFlags(getTenantCmd), needID: true},
	"rotate-key":    {bind: noFlags(rotateCmd("rotateApiKey", "api_key", "API key")), needID: true},
	"rotate-secret": {bind: noFlags(rotateCmd("rotateWebhookSecret", "webhook_secret", "webhook secret")), needID: true},
	"rejections":    {bind: noFlags(rejectionsCmd), needID: true},
	"delete":        {bind: noFlags(deleteTenantCmd), needID: true},
}

func tenants(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return apiGroup{name: "tenants", usage: tenantsUsage, commands: tenantCommands, idName: "TENANT_ID"}.run(ctx, args, getenv, stdout, stderr)
}

// apiGroup is a group of commands over the REST API: wxrelay tenants,
// wxrelay operators.
type apiGroup struct {
	name, usage string
	commands    map[string]apiCommand
	idName      string // what a command's argument names, for its usage line
}

// run parses args, a command of the group, its argument and its flags,
// and runs it with an admin token: the one given, or one signed here.
func (g apiGroup) run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, g.usage)
		return errUsage
	}
	name, args := args[0], args[1:]
	cmd, ok := g.commands[name]
	if !ok {
		fmt.Fprintf(stderr, "wxrelay %s: unknown command %q\n\n%s", g.name, name, g.usage)
		return errUsage
	}
	var id string
	if cmd.needID {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			fmt.Fprintf(stderr, "usage: wxrelay %s %s %s [flags]\n", g.name, name, g.idName)
			return errUsage
		}
		id, args = args[0], args[1:]
	}
	fs := newFlagSet(g.name+" "+name, getenv, stderr)
	base := fs.String("url", "http://localhost:8080", "the relay's HTTP address (WXRELAY_URL)")
	fs.bindEnv("url", "WXRELAY_URL")
	token := fs.String("admin-token", "", "an admin token or operator key (WXRELAY_ADMIN_TOKEN); default: one signed here with the relay's key")
	fs.bindEnv("admin-token", "WXRELAY_ADMIN_TOKEN")
	jsonOut := fs.Bool("json", false, "print the API's answer as it is")
	runCmd := cmd.bind(fs)
	cfg, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *token == "" {
		if *token, err = localAdminToken(cfg); err != nil {
			return err
		}
	}
	c := &apiClient{ctx: ctx, base: strings.TrimRight(*base, "/"), token: *token, json: *jsonOut}
	return runCmd(c, id, stdout)
}

// localAdminToken signs a short admin token with the key of the relay
// whose database cfg names, for an operator on the relay's machine.
func localAdminToken(cfg *config) (string, error) {
	if err := keyExists(cfg, false); err != nil {
		return "", fmt.Errorf("no --admin-token (WXRELAY_ADMIN_TOKEN), and none can be signed here: %w", err)
	}
	k, err := loadKeys(cfg)
	if err != nil {
		return "", err
	}
	auth, err := tenant.NewAuthenticator(k.jwt, nil, nil)
	if err != nil {
		return "", err
	}
	return auth.IssueAdminToken(10 * time.Minute)
}

// apiClient calls the relay's REST API as an admin.
type apiClient struct {
	ctx         context.Context
	base, token string
	json        bool
}

// apiError is an answer other than 200: its status and the API's
// message (a google.rpc.Status).
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string {
	if e.status == http.StatusUnauthorized {
		return fmt.Sprintf("the relay refused the admin token (401: %s): is it this relay's, and current? (wxrelay admin-token)", e.message)
	}
	return fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.message)
}

// call sends method path with body (nil for none) and decodes the answer
// into out (nil to drop it); it returns the answer's bytes.
func (c *apiClient) call(method, path string, body any, out any) ([]byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, fmt.Errorf("--url %q: %w", c.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the relay at %s did not answer (is it running? --url, WXRELAY_URL): %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var st struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &st) != nil || st.Message == "" {
			st.Message = strings.TrimSpace(string(raw))
		}
		return nil, &apiError{status: resp.StatusCode, message: st.Message}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("the answer of %s %s is not the API's JSON: %w", method, path, err)
		}
	}
	return raw, nil
}

// printJSON writes an answer indented, as --json and get show it.
func printJSON(w io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// createFlags are create's flags.
type createFlags struct {
	name, appid, secret, token, aesKey, mode, format, webhook, originalID string
	check                                                                 bool
}

func createTenantFlags(fs *flagSet) apiRun {
	f := &createFlags{}
	fs.StringVar(&f.name, "name", "", "a display name")
	fs.StringVar(&f.appid, "appid", "", "the mini program's AppID (wx and 16 hex characters)")
	fs.StringVar(&f.secret, "app-secret", "", "its AppSecret (32 hex characters); - reads it from the first line of standard input, out of the shell's history")
	fs.StringVar(&f.token, "token", "", "the push Token set in the mini-program console (消息推送)")
	fs.StringVar(&f.aesKey, "aes-key", "", "the EncodingAESKey (43 characters), for compatible and safe mode")
	fs.StringVar(&f.mode, "mode", "", "plaintext, compatible or safe, as chosen in the console (default: safe with --aes-key, else plaintext)")
	fs.StringVar(&f.format, "format", "xml", "xml or json, as chosen in the console (数据格式)")
	fs.StringVar(&f.webhook, "webhook", "", "the tenant's webhook URL, where its events are delivered")
	fs.StringVar(&f.originalID, "original-id", "", "the mini program's original id (gh_...), optional")
	fs.BoolVar(&f.check, "check", true, "ask WeChat first whether the AppID and AppSecret hold; nothing is created if not")
	return func(c *apiClient, _ string, stdout io.Writer) error { return f.create(c, stdout) }
}

func (f createFlags) create(c *apiClient, stdout io.Writer) error {
	if f.secret == "-" {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("--app-secret -: read standard input: %w", err)
		}
		f.secret = strings.TrimSpace(line)
	}
	if f.mode == "" {
		f.mode = "plaintext"
		if f.aesKey != "" {
			f.mode = "safe"
		}
	}
	body := map[string]any{
		"display_name": f.name, "appid": f.appid, "app_secret": f.secret, "token": f.token,
		"encoding_aes_key": f.aesKey, "encrypt_mode": "ENCRYPT_MODE_" + strings.ToUpper(f.mode),
		"data_format": "DATA_FORMAT_" + strings.ToUpper(f.format), "webhook_url": f.webhook, "original_id": f.originalID,
	}
	var created struct {
		Tenant struct {
			ID               string `json:"id"`
			Appid            string `json:"appid"`
			PushURL          string `json:"push_url"`
			WechatAPIBaseURL string `json:"wechat_api_base_url"`
		} `json:"tenant"`
		APIKey             string `json:"api_key"`
		WebhookSecret      string `json:"webhook_secret"`
		CredentialsChecked bool   `json:"credentials_checked"`
	}
	raw, err := c.call(http.MethodPost, "/v1/tenants?check_credentials="+fmt.Sprint(f.check), body, &created)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, raw)
	}
	t := created.Tenant
	checked := "not checked with WeChat (--check=false); its token_status will say"
	if created.CredentialsChecked {
		checked = "checked with WeChat: they hold"
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "tenant\t%s (%s), credentials %s\n", t.ID, t.Appid, checked)
	fmt.Fprintf(w, "push URL\t%s\tpaste into the mini-program console: 开发管理 → 开发设置 → 消息推送, with the same Token and EncodingAESKey\n", t.PushURL)
	fmt.Fprintf(w, "API key\t%s\tshown this once: the tenant's bearer token for /v1/tenants/%s/...\n", created.APIKey, t.ID)
	fmt.Fprintf(w, "webhook secret\t%s\tshown this once: verifies the webhook-signature of each delivery\n", created.WebhookSecret)
	fmt.Fprintf(w, "compatible API\t%s\tfor WeChat SDKs, with the API key as the AppSecret\n", t.WechatAPIBaseURL)
	return w.Flush()
}

func listTenantsCmd(c *apiClient, _ string, stdout io.Writer) error {
	type reason struct {
		Kind string `json:"kind"`
	}
	type row struct {
		ID          string `json:"id"`
		Appid       string `json:"appid"`
		DisplayName string `json:"display_name"`
		State       string `json:"state"`
		Health      struct {
			State   string   `json:"state"`
			Reasons []reason `json:"reasons"`
		} `json:"health"`
	}
	var all []row
	var raws []json.RawMessage
	for page := ""; ; {
		var resp struct {
			Tenants []json.RawMessage `json:"tenants"`
			Next    string            `json:"next_page_token"`
		}
		if _, err := c.call(http.MethodGet, "/v1/tenants?page_size=500&page_token="+url.QueryEscape(page), nil, &resp); err != nil {
			return err
		}
		for _, r := range resp.Tenants {
			var t row
			if err := json.Unmarshal(r, &t); err != nil {
				return err
			}
			all, raws = append(all, t), append(raws, r)
		}
		if page = resp.Next; page == "" {
			break
		}
	}
	if c.json {
		b, err := json.Marshal(map[string]any{"tenants": raws})
		if err != nil {
			return err
		}
		return printJSON(stdout, b)
	}
	if len(all) == 0 {
		_, err := fmt.Fprintln(stdout, "no tenants yet: wxrelay tenants create -h")
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tAPPID\tNAME\tSTATE\tHEALTH\tREASONS")
	for _, t := range all {
		var kinds []string
		for _, r := range t.Health.Reasons {
			kinds = append(kinds, strings.TrimPrefix(r.Kind, "KIND_"))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Appid, t.DisplayName, strings.TrimPrefix(t.State, "STATE_"),
			strings.TrimPrefix(t.Health.State, "STATE_"), strings.Join(kinds, ","))
	}
	return w.Flush()
}

func getTenantCmd(c *apiClient, id string, stdout io.Writer) error {
	raw, err := c.call(http.MethodGet, "/v1/tenants/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return err
	}
	return printJSON(stdout, raw)
}

// rotateCmd is a command that rotates one of a tenant's credentials by
// the API's :verb and prints the new value, field of the answer.
func rotateCmd(verb, field, what string) apiRun {
	return func(c *apiClient, id string, stdout io.Writer) error {
		var resp map[string]any
		raw, err := c.call(http.MethodPost, "/v1/tenants/"+url.PathEscape(id)+":"+verb, map[string]any{}, &resp)
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(stdout, raw)
		}
		_, err = fmt.Fprintf(stdout, "new %s of %s (shown this once):\n%v\n", what, id, resp[field])
		return err
	}
}

func rejectionsCmd(c *apiClient, id string, stdout io.Writer) error {
	var resp struct {
		Rejections []struct {
			Cause     string `json:"cause"`
			Count     string `json:"count"`
			FirstTime string `json:"first_time"`
			LastTime  string `json:"last_time"`
			InForce   bool   `json:"in_force"`
			Hint      string `json:"hint"`
		} `json:"rejections"`
	}
	raw, err := c.call(http.MethodGet, "/v1/tenants/"+url.PathEscape(id)+"/pushRejections", nil, &resp)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, raw)
	}
	if len(resp.Rejections) == 0 {
		_, err := fmt.Fprintf(stdout, "no push to %s was refused in the last 24h\n", id)
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "CAUSE\tPUSHES\tFROM\tLATEST\tNOW\tWHAT TO CHECK")
	for _, r := range resp.Rejections {
		now := ""
		if r.InForce {
			now = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Cause, r.Count, r.FirstTime, r.LastTime, now, r.Hint)
	}
	return w.Flush()
}

func deleteTenantCmd(c *apiClient, id string, stdout io.Writer) error {
	if _, err := c.call(http.MethodDelete, "/v1/tenants/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "deleted %s: its API key stopped working; its history is purged in the background\n", id)
	return err
}
