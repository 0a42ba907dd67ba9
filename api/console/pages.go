package console

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/tenant"
)

// tenantRow is one line of the tenants page.
type tenantRow struct {
	ID, Name, AppID string
	// Health is OK, DEGRADED, FAILING, or "" when not computed yet.
	Health   string
	Reasons  []string
	Disabled bool
	Created  time.Time
}

type tenantListBody struct {
	Rows   []tenantRow
	Total  int
	Counts map[string]int // by health
	State  string         // the filter, "" for all
	Sort   string
	States []string
}

// listPageSize is the page size the console reads tenants with: the
// API's largest.
const listPageSize = 500

// tenantList is the console's home: every tenant with its health, worst
// first unless sorted otherwise, filtered by state.
func (c *Console) tenantList(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := callCtx(r.Context(), s)
	var rows []tenantRow
	for page := ""; ; {
		resp, err := c.tenants.ListTenants(ctx, &wxrelayv1.ListTenantsRequest{PageSize: listPageSize, PageToken: page})
		if err != nil {
			c.apiError(w, r, s, err)
			return
		}
		for _, t := range resp.GetTenants() {
			row := tenantRow{ID: t.GetId(), Name: t.GetDisplayName(), AppID: t.GetAppid(),
				Disabled: t.GetState() == wxrelayv1.Tenant_STATE_DISABLED, Created: t.GetCreateTime().AsTime()}
			if h := t.GetHealth(); h != nil {
				row.Health = healthName(h.GetState())
				for _, rs := range h.GetReasons() {
					row.Reasons = append(row.Reasons, kindName(rs.GetKind()))
				}
			}
			rows = append(rows, row)
		}
		if page = resp.GetNextPageToken(); page == "" {
			break
		}
	}
	q := r.URL.Query()
	b := tenantListBody{Total: len(rows), Counts: map[string]int{}, State: q.Get("state"), Sort: q.Get("sort"),
		States: []string{"FAILING", "DEGRADED", "OK"}}
	for _, row := range rows {
		b.Counts[row.Health]++
	}
	if b.State != "" {
		rows = slices.DeleteFunc(rows, func(t tenantRow) bool { return t.Health != b.State })
	}
	sortTenants(rows, b.Sort)
	b.Rows = rows
	// Health is computed every 15 s by default: the page follows it.
	c.render(w, "tenants", http.StatusOK, pageData{Title: "Tenants", Nav: "tenants", CSRF: s.csrf(), Who: s.who(), Refresh: 15, Body: b})
}

// healthRank orders tenants worst first.
var healthRank = map[string]int{"FAILING": 0, "DEGRADED": 1, "": 2, "OK": 3}

func sortTenants(rows []tenantRow, by string) {
	byName := func(a, b tenantRow) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.ID, b.ID))
	}
	slices.SortStableFunc(rows, func(a, b tenantRow) int {
		switch by {
		case "name":
			return byName(a, b)
		case "appid":
			return cmp.Compare(a.AppID, b.AppID)
		case "created":
			return b.Created.Compare(a.Created) // newest first
		default: // health, worst first
			return cmp.Or(cmp.Compare(healthRank[a.Health], healthRank[b.Health]), byName(a, b))
		}
	})
}

// tenantForm is the onboarding form's values and its errors by field.
type tenantForm struct {
	DisplayName, AppID, OriginalID, WebhookURL string
	EncryptMode, DataFormat, ReplyMode         string
	PushSilenceAlert                           string
	OrderedDelivery                            bool
	// CheckCredentials asks WeChat whether the AppID and AppSecret hold
	// before onboarding (CreateTenant's check_credentials).
	CheckCredentials bool
	// Errors are the API's validation messages, by proto field name;
	// Error is one that names no field.
	Errors map[string]string
	Error  string
	// Edit is the settings form of the tenant TenantID, rather than
	// onboarding; State is its ACTIVE or DISABLED.
	Edit     bool
	TenantID string
	State    string
	Action   string // where the form posts
}

// readTenantForm reads the form's fields (all but the secrets, which are
// never written back into a page).
func readTenantForm(r *http.Request) tenantForm {
	return tenantForm{
		DisplayName: r.PostFormValue("display_name"), AppID: strings.TrimSpace(r.PostFormValue("appid")),
		OriginalID: strings.TrimSpace(r.PostFormValue("original_id")), WebhookURL: strings.TrimSpace(r.PostFormValue("webhook_url")),
		EncryptMode: r.PostFormValue("encrypt_mode"), DataFormat: r.PostFormValue("data_format"), ReplyMode: r.PostFormValue("reply_mode"),
		PushSilenceAlert: strings.TrimSpace(r.PostFormValue("push_silence_alert")), OrderedDelivery: r.PostFormValue("ordered_delivery") != "",
		State: r.PostFormValue("state"), Errors: map[string]string{}, CheckCredentials: r.PostFormValue("check_credentials") != "",
	}
}

// protoTenant is the form as the API's Tenant, with the secrets typed into
// r. A push_silence_alert that is not a duration is an error at its field.
func (f *tenantForm) protoTenant(r *http.Request) *wxrelayv1.Tenant {
	in := &wxrelayv1.Tenant{
		DisplayName: f.DisplayName, Appid: f.AppID, OriginalId: f.OriginalID, WebhookUrl: f.WebhookURL,
		AppSecret: strings.TrimSpace(r.PostFormValue("app_secret")), Token: strings.TrimSpace(r.PostFormValue("token")),
		EncodingAesKey:  strings.TrimSpace(r.PostFormValue("encoding_aes_key")),
		EncryptMode:     wxrelayv1.Tenant_EncryptMode(wxrelayv1.Tenant_EncryptMode_value["ENCRYPT_MODE_"+f.EncryptMode]),
		DataFormat:      wxrelayv1.Tenant_DataFormat(wxrelayv1.Tenant_DataFormat_value["DATA_FORMAT_"+f.DataFormat]),
		ReplyMode:       wxrelayv1.Tenant_ReplyMode(wxrelayv1.Tenant_ReplyMode_value["REPLY_MODE_"+f.ReplyMode]),
		State:           wxrelayv1.Tenant_State(wxrelayv1.Tenant_State_value["STATE_"+f.State]),
		OrderedDelivery: f.OrderedDelivery,
	}
	if f.PushSilenceAlert != "" && f.PushSilenceAlert != "off" {
		d, err := time.ParseDuration(f.PushSilenceAlert)
		if err != nil {
			f.Errors["push_silence_alert"] = "is not a duration such as 30m or 6h (or off)"
		} else {
			in.PushSilenceAlert = durationpb.New(d)
		}
	}
	return in
}

// apiFieldErrors puts a refused call's messages into the form, at their
// fields where they name one; it reports false for an error that is not
// about the input, which the caller shows as a page.
func (f *tenantForm) apiFieldErrors(err error) bool {
	st := status.Convert(err)
	switch st.Code() {
	case codes.InvalidArgument, codes.AlreadyExists, codes.FailedPrecondition:
	default:
		return false
	}
	violations := fieldViolations(st)
	if st.Code() == codes.AlreadyExists {
		// The appid is taken: say so at the appid, naming the tenant that
		// has it.
		violations["appid"] = st.Message()
	}
	for field, msg := range violations {
		f.Errors[field] = msg
	}
	if len(violations) == 0 {
		f.Error = st.Message()
	}
	return true
}

func (c *Console) newTenantPage(w http.ResponseWriter, r *http.Request, s *session) {
	f := tenantForm{EncryptMode: "SAFE", DataFormat: "JSON", ReplyMode: "SUCCESS", Action: "/console/tenants", CheckCredentials: true}
	c.render(w, "tenant_new", http.StatusOK, pageData{Title: "Onboard a mini-program", Nav: "new", CSRF: s.csrf(), Who: s.who(), Body: f})
}

// createTenant onboards a tenant through the API. On a validation error
// the form comes back with the API's message beside the field at fault,
// and with what was typed, but for the secrets: those are never written
// into a page.
func (c *Console) createTenant(w http.ResponseWriter, r *http.Request, s *session) {
	f := readTenantForm(r)
	f.Action = "/console/tenants"
	in := f.protoTenant(r)
	in.State = wxrelayv1.Tenant_STATE_UNSPECIFIED // new tenants are active
	if len(f.Errors) == 0 {
		resp, err := c.tenants.CreateTenant(callCtx(r.Context(), s), &wxrelayv1.CreateTenantRequest{Tenant: in, CheckCredentials: f.CheckCredentials})
		if err == nil {
			c.o.Logger.Info("console: tenant onboarded", "tenant", resp.GetTenant().GetId())
			c.render(w, "created", http.StatusOK, pageData{Title: "Onboarded", Nav: "new", CSRF: s.csrf(), Who: s.who(), Body: createdBody{
				Tenant: resp.GetTenant(), APIKey: resp.GetApiKey(), WebhookSecret: resp.GetWebhookSecret(),
			}})
			return
		}
		if st, _ := status.FromError(err); f.CheckCredentials && st.Code() == codes.Unavailable {
			// WeChat could not be asked: the form stays, with why.
			f.Error = st.Message()
		} else if !f.apiFieldErrors(err) {
			c.apiError(w, r, s, err)
			return
		}
	}
	c.render(w, "tenant_new", http.StatusBadRequest, pageData{Title: "Onboard a mini-program", Nav: "new", CSRF: s.csrf(), Who: s.who(), Body: f})
}

// editTenantPage is the settings form of a tenant, filled with what the
// API says of it.
func (c *Console) editTenantPage(w http.ResponseWriter, r *http.Request, s *session) {
	t, err := c.tenants.GetTenant(callCtx(r.Context(), s), &wxrelayv1.GetTenantRequest{Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	f := tenantForm{
		Edit: true, TenantID: t.GetId(), Action: "/console/tenants/" + t.GetId() + "/settings",
		DisplayName: t.GetDisplayName(), AppID: t.GetAppid(), OriginalID: t.GetOriginalId(), WebhookURL: t.GetWebhookUrl(),
		EncryptMode:     strings.TrimPrefix(t.GetEncryptMode().String(), "ENCRYPT_MODE_"),
		DataFormat:      strings.TrimPrefix(t.GetDataFormat().String(), "DATA_FORMAT_"),
		ReplyMode:       strings.TrimPrefix(t.GetReplyMode().String(), "REPLY_MODE_"),
		State:           strings.TrimPrefix(t.GetState().String(), "STATE_"),
		OrderedDelivery: t.GetOrderedDelivery(), Errors: map[string]string{},
	}
	if d := t.GetPushSilenceAlert(); d != nil {
		f.PushSilenceAlert = d.AsDuration().String()
	}
	c.render(w, "tenant_new", http.StatusOK, pageData{Title: "Settings", Nav: "tenants", CSRF: s.csrf(), Who: s.who(), Body: f})
}

// editableFields are the fields the settings form always sends; the
// secrets are sent only when typed.
var editableFields = []string{"display_name", "appid", "original_id", "webhook_url", "encrypt_mode", "data_format",
	"reply_mode", "ordered_delivery", "push_silence_alert", "state"}

// updateTenant saves the settings form with one PATCH of its fields.
func (c *Console) updateTenant(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	f := readTenantForm(r)
	f.Edit, f.TenantID, f.Action = true, id, "/console/tenants/"+id+"/settings"
	in := f.protoTenant(r)
	mask := slices.Clone(editableFields)
	for _, secret := range []struct {
		field string
		set   bool
	}{{"app_secret", in.AppSecret != ""}, {"token", in.Token != ""}, {"encoding_aes_key", in.EncodingAesKey != ""}} {
		if secret.set {
			mask = append(mask, secret.field)
		}
	}
	if len(f.Errors) == 0 {
		_, err := c.tenants.UpdateTenant(callCtx(r.Context(), s), &wxrelayv1.UpdateTenantRequest{
			Id: id, Tenant: in, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}})
		if err == nil {
			c.o.Logger.Info("console: tenant updated", "tenant", id)
			http.Redirect(w, r, "/console/tenants/"+id+"?saved=1", http.StatusSeeOther)
			return
		}
		if !f.apiFieldErrors(err) {
			c.apiError(w, r, s, err)
			return
		}
	}
	c.render(w, "tenant_new", http.StatusBadRequest, pageData{Title: "Settings", Nav: "tenants", CSRF: s.csrf(), Who: s.who(), Body: f})
}

// fieldViolations are a status's BadRequest details: field → message.
func fieldViolations(st *status.Status) map[string]string {
	out := map[string]string{}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				// The API names nested fields as tenant.x (component.x)
				// over gRPC; the form's fields are x.
				field := strings.TrimPrefix(strings.TrimPrefix(v.GetField(), "tenant."), "component.")
				out[field] = v.GetDescription()
			}
		}
	}
	return out
}

type createdBody struct {
	Tenant                *wxrelayv1.Tenant
	APIKey, WebhookSecret string
}

// tenantBody is the tenant page.
type tenantBody struct {
	T      *wxrelayv1.Tenant
	Health string
	Chart  chart
	// Secret is a value just rotated, shown this once.
	Secret      string
	SecretLabel string
	// ConsentURL is a consent link just made for a component's tenant.
	ConsentURL     string
	ConsentExpires *timestamppb.Timestamp
	// Rejections are the runs of refused pushes of the last day.
	Rejections []*wxrelayv1.PushRejection
}

func (c *Console) tenantPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showTenantWith(w, r, s, nil)
}

func (c *Console) showTenant(w http.ResponseWriter, r *http.Request, s *session, label, secret string) {
	c.showTenantWith(w, r, s, func(b *tenantBody) { b.SecretLabel, b.Secret = label, secret })
}

// showTenantWith shows the tenant page, with what set adds.
func (c *Console) showTenantWith(w http.ResponseWriter, r *http.Request, s *session, set func(*tenantBody)) {
	ctx := callCtx(r.Context(), s)
	t, err := c.tenants.GetTenant(ctx, &wxrelayv1.GetTenantRequest{Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	ch, err := c.chartOf(r.Context(), tenant.ID(t.GetId()))
	if err != nil {
		// The page is still worth showing, with an empty chart.
		c.o.Logger.Error("console: chart", "tenant", t.GetId(), "err", err)
	}
	b := tenantBody{T: t, Health: healthName(t.GetHealth().GetState()), Chart: ch}
	if rj, err := c.tenants.ListPushRejections(ctx, &wxrelayv1.ListPushRejectionsRequest{Id: t.GetId()}); err != nil {
		c.o.Logger.Error("console: push rejections", "tenant", t.GetId(), "err", err)
	} else {
		b.Rejections = rj.GetRejections()
	}
	if set != nil {
		set(&b)
	}
	flash := ""
	if r.Method == http.MethodGet && r.URL.Query().Get("saved") != "" {
		flash = "Saved."
	}
	c.render(w, "tenant", http.StatusOK, pageData{Title: cmp.Or(t.GetDisplayName(), t.GetAppid()), Nav: "tenants", CSRF: s.csrf(), Who: s.who(), Flash: flash, Body: b})
}

// chart serves a tenant's chart alone, as an SVG image.
func (c *Console) chart(w http.ResponseWriter, r *http.Request, s *session) {
	if _, err := c.tenants.GetTenant(callCtx(r.Context(), s), &wxrelayv1.GetTenantRequest{Id: r.PathValue("id")}); err != nil {
		c.apiError(w, r, s, err)
		return
	}
	ch, err := c.chartOf(r.Context(), tenant.ID(r.PathValue("id")))
	if err != nil {
		http.Error(w, "the chart's data could not be read", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	if err := c.pages["tenant"].ExecuteTemplate(w, "chart-svg", ch); err != nil {
		c.o.Logger.Error("console: chart", "err", err)
	}
}

// chartOf is tenant tid's chart of the last chartSpan, up to now.
func (c *Console) chartOf(ctx context.Context, tid tenant.ID) (chart, error) {
	now := c.o.Now()
	counts, err := c.o.Stats.AttemptsPerMinute(ctx, tid, now.Add(-chartSpan).Truncate(time.Minute), now)
	return newChart(counts, now), err
}

func (c *Console) rotateAPIKey(w http.ResponseWriter, r *http.Request, s *session) {
	resp, err := c.tenants.RotateApiKey(callCtx(r.Context(), s), &wxrelayv1.RotateApiKeyRequest{Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	c.o.Logger.Info("console: api key rotated", "tenant", r.PathValue("id"))
	c.showTenant(w, r, s, "New API key", resp.GetApiKey())
}

func (c *Console) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, s *session) {
	resp, err := c.tenants.RotateWebhookSecret(callCtx(r.Context(), s), &wxrelayv1.RotateWebhookSecretRequest{Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	c.o.Logger.Info("console: webhook secret rotated", "tenant", r.PathValue("id"))
	c.showTenant(w, r, s, "New webhook secret", resp.GetWebhookSecret())
}

// eventFilter is the events page's filter form, as given.
type eventFilter struct {
	Type, State, After, Before, OpenID string
}

type eventListBody struct {
	T      *wxrelayv1.Tenant
	Events []*wxrelayv1.Event
	Filter eventFilter
	Error  string
	// Next is the query of the next page; "" on the last.
	Next   string
	States []string
	// Recoveries are the tenant's latest bulk recoveries; Since is the
	// recovery form's default, a day ago.
	Recoveries []*wxrelayv1.Recovery
	Since      string
	// Running is set while one of them runs: a tenant has one at a time.
	Running bool
}

// formTime is how the filter's datetime-local inputs send times: in UTC,
// which the page says.
const formTime = "2006-01-02T15:04"

func (c *Console) eventList(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := callCtx(r.Context(), s)
	t, err := c.tenants.GetTenant(ctx, &wxrelayv1.GetTenantRequest{Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	q := r.URL.Query()
	f := eventFilter{Type: strings.TrimSpace(q.Get("type")), State: q.Get("state"), After: q.Get("after"), Before: q.Get("before"),
		OpenID: strings.TrimSpace(q.Get("openid"))}
	b := eventListBody{T: t, Filter: f, States: []string{"PENDING", "DELIVERED", "FAILED"}}
	req := &wxrelayv1.ListEventsRequest{Id: t.GetId(), PageSize: 50, PageToken: q.Get("page"), Type: f.Type, Openid: f.OpenID}
	if f.State != "" {
		v, ok := wxrelayv1.Event_State_value["STATE_"+f.State]
		if !ok {
			b.Error = fmt.Sprintf("state %q is not one of PENDING, DELIVERED, FAILED", f.State)
		}
		req.State = wxrelayv1.Event_State(v)
	}
	for _, tf := range []struct {
		name, v string
		dst     **timestamppb.Timestamp
	}{{"after", f.After, &req.ReceivedAfter}, {"before", f.Before, &req.ReceivedBefore}} {
		if tf.v == "" {
			continue
		}
		at, err := time.ParseInLocation(formTime, tf.v, time.UTC)
		if err != nil {
			b.Error = fmt.Sprintf("%s %q is not a time such as 2026-12-03T14:30", tf.name, tf.v)
			continue
		}
		*tf.dst = timestamppb.New(at)
	}
	if b.Error == "" {
		resp, err := c.events.ListEvents(ctx, req)
		switch {
		case status.Code(err) == codes.InvalidArgument:
			b.Error = status.Convert(err).Message()
		case err != nil:
			c.apiError(w, r, s, err)
			return
		default:
			b.Events = resp.GetEvents()
			if tok := resp.GetNextPageToken(); tok != "" {
				next := r.URL.Query()
				next.Set("page", tok)
				b.Next = next.Encode()
			}
		}
	}
	code := http.StatusOK
	if b.Error != "" {
		code = http.StatusBadRequest
	}
	b.Since = time.Now().UTC().Add(-24 * time.Hour).Format(formTime)
	refresh := 0
	if rs, err := c.events.ListRecoveries(ctx, &wxrelayv1.ListRecoveriesRequest{Id: t.GetId()}); err == nil {
		b.Recoveries = rs.GetRecoveries()
		for _, rc := range b.Recoveries {
			if rc.GetState() == wxrelayv1.Recovery_STATE_RUNNING {
				refresh = 2 // the progress moves
				b.Running = true
			}
		}
	} else {
		c.o.Logger.Error("console: recoveries", "tenant", t.GetId(), "err", err)
	}
	flash := ""
	if r.URL.Query().Get("recovering") != "" {
		flash = "Recovery started: the failed events are queued again in the background; its progress is below."
	}
	c.render(w, "events", code, pageData{Title: "Events", Nav: "tenants", CSRF: s.csrf(), Who: s.who(), Body: b, Refresh: refresh, Flash: flash})
}

// recoverFailed starts a bulk recovery of the tenant's failed events
// received since the form's time (UTC).
func (c *Console) recoverFailed(w http.ResponseWriter, r *http.Request, s *session) {
	since, err := time.ParseInLocation(formTime, r.PostFormValue("since"), time.UTC)
	if err != nil {
		c.apiError(w, r, s, &tenant.FieldError{Field: "since", Reason: fmt.Sprintf("%q is not a time such as 2026-12-03T14:30", r.PostFormValue("since"))})
		return
	}
	if _, err := c.events.RecoverFailedEvents(callCtx(r.Context(), s), &wxrelayv1.RecoverFailedEventsRequest{Id: r.PathValue("id"), Since: timestamppb.New(since)}); err != nil {
		c.apiError(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/console/tenants/"+r.PathValue("id")+"/events?recovering=1", http.StatusSeeOther)
}

type eventBody struct {
	T       *wxrelayv1.Tenant
	E       *wxrelayv1.Event
	Payload string
}

// sendTestEvent sends a test event to the tenant's webhook and shows it.
func (c *Console) sendTestEvent(w http.ResponseWriter, r *http.Request, s *session) {
	e, err := c.events.SendTestEvent(callCtx(r.Context(), s), &wxrelayv1.SendTestEventRequest{Id: r.PathValue("id"), Note: r.PostFormValue("note")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/console/tenants/"+r.PathValue("id")+"/events/"+e.GetId()+"?sent=1", http.StatusSeeOther)
}

func (c *Console) eventPage(w http.ResponseWriter, r *http.Request, s *session) {
	flash := ""
	switch {
	case r.URL.Query().Get("redelivered") != "":
		flash = "Queued for delivery again: the attempts below show how it goes (reload)."
	case r.URL.Query().Get("sent") != "":
		flash = "Test event sent to the tenant's webhook: the attempts below show how it answers (reload)."
	}
	ctx := callCtx(r.Context(), s)
	t, err := c.tenants.GetTenant(ctx, &wxrelayv1.GetTenantRequest{Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	e, err := c.events.GetEvent(ctx, &wxrelayv1.GetEventRequest{Id: t.GetId(), EventId: r.PathValue("event")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	// The bytes delivered, indented: json.Indent keeps their field order
	// and numbers as they are (a Struct would sort the keys and turn
	// MsgId into a string).
	var payload bytes.Buffer
	if err := json.Indent(&payload, []byte(e.GetDeliveredBody()), "", "  "); err != nil {
		payload.Reset()
		payload.WriteString(e.GetDeliveredBody())
	}
	c.render(w, "event", http.StatusOK, pageData{Title: e.GetId(), Nav: "tenants", CSRF: s.csrf(), Who: s.who(), Flash: flash, Body: eventBody{T: t, E: e, Payload: payload.String()}})
}

func (c *Console) redeliver(w http.ResponseWriter, r *http.Request, s *session) {
	_, err := c.events.RedeliverEvent(callCtx(r.Context(), s), &wxrelayv1.RedeliverEventRequest{Id: r.PathValue("id"), EventId: r.PathValue("event")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	// Back to the event by GET, so that a reload does not redeliver again.
	http.Redirect(w, r, "/console/tenants/"+r.PathValue("id")+"/events/"+r.PathValue("event")+"?redelivered=1", http.StatusSeeOther)
}

// healthName is a health state without its enum prefix: OK, DEGRADED,
// FAILING; "" when not computed.
func healthName(s wxrelayv1.Health_State) string {
	if s == wxrelayv1.Health_STATE_UNSPECIFIED {
		return ""
	}
	return strings.TrimPrefix(s.String(), "STATE_")
}

func kindName(k wxrelayv1.Health_Kind) string { return strings.TrimPrefix(k.String(), "KIND_") }

// callsBody is a page of a tenant's calls through the WeChat-compatible
// API and the send API, newest first.
type callsBody struct {
	T     *wxrelayv1.Tenant
	Calls []*wxrelayv1.Call
	Next  string // the query of the next page, "" at the end
}

func (c *Console) callList(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := callCtx(r.Context(), s)
	t, err := c.tenants.GetTenant(ctx, &wxrelayv1.GetTenantRequest{Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	resp, err := c.calls.ListCalls(ctx, &wxrelayv1.ListCallsRequest{Id: t.GetId(), PageSize: 100, PageToken: r.URL.Query().Get("page")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	b := callsBody{T: t, Calls: resp.GetCalls()}
	if next := resp.GetNextPageToken(); next != "" {
		b.Next = url.Values{"page": {next}}.Encode()
	}
	c.render(w, "calls", http.StatusOK, pageData{Title: "Calls", Nav: "tenants", CSRF: s.csrf(), Who: s.who(), Body: b})
}

// searchBody is what the operator's search found.
type searchBody struct {
	Query   string
	Tenants []*wxrelayv1.Tenant
	Events  []*wxrelayv1.SearchResponse_EventHit
	Error   string
}

// search finds tenants by id or appid and events by id or openid, across
// tenants.
func (c *Console) search(w http.ResponseWriter, r *http.Request, s *session) {
	b := searchBody{Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	code := http.StatusOK
	if b.Query != "" {
		resp, err := c.tenants.Search(callCtx(r.Context(), s), &wxrelayv1.SearchRequest{Query: b.Query})
		switch {
		case status.Code(err) == codes.InvalidArgument:
			b.Error, code = status.Convert(err).Message(), http.StatusBadRequest
		case err != nil:
			c.apiError(w, r, s, err)
			return
		default:
			b.Tenants, b.Events = resp.GetTenants(), resp.GetEvents()
		}
	}
	c.render(w, "search", code, pageData{Title: "Search", Nav: "search", CSRF: s.csrf(), Who: s.who(), Body: b})
}
