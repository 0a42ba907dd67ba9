package console

import (
	"cmp"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
)

// Components (third-party platforms) and their authorizations: the
// pages an agency's operator registers a component with, finds the two
// URLs to paste on the open platform, and sees which mini programs have
// authorized it and whether each has a tenant.

type componentRow struct {
	C       *wxrelayv1.Component
	Health  string
	Reasons []string
}

func (c *Console) componentList(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := callCtx(r.Context(), s)
	var rows []componentRow
	for page := ""; ; {
		resp, err := c.components.ListComponents(ctx, &wxrelayv1.ListComponentsRequest{PageSize: listPageSize, PageToken: page})
		if err != nil {
			c.apiError(w, r, s, err)
			return
		}
		for _, comp := range resp.GetComponents() {
			row := componentRow{C: comp, Health: healthName(comp.GetHealth().GetState())}
			for _, reason := range comp.GetHealth().GetReasons() {
				row.Reasons = append(row.Reasons, kindName(reason.GetKind()))
			}
			rows = append(rows, row)
		}
		if page = resp.GetNextPageToken(); page == "" {
			break
		}
	}
	c.render(w, "components", http.StatusOK, pageData{Title: "Third-party platforms", Nav: "components", CSRF: s.csrf(), Who: s.who(), Refresh: 15, Body: rows})
}

// componentForm is the registration form; the secrets are never written
// back into a page.
type componentForm struct {
	DisplayName, AppID string
	Errors             map[string]string
}

func (c *Console) newComponentPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, "component_new", http.StatusOK, pageData{Title: "Register a third-party platform", Nav: "components", CSRF: s.csrf(), Who: s.who(),
		Body: componentForm{Errors: map[string]string{}}})
}

func (c *Console) createComponent(w http.ResponseWriter, r *http.Request, s *session) {
	f := componentForm{DisplayName: strings.TrimSpace(r.PostFormValue("display_name")), AppID: strings.TrimSpace(r.PostFormValue("component_appid")),
		Errors: map[string]string{}}
	in := &wxrelayv1.Component{DisplayName: f.DisplayName, ComponentAppid: f.AppID, ComponentSecret: r.PostFormValue("component_secret"),
		Token: r.PostFormValue("token"), EncodingAesKey: r.PostFormValue("encoding_aes_key")}
	resp, err := c.components.CreateComponent(callCtx(r.Context(), s), &wxrelayv1.CreateComponentRequest{Component: in})
	if err == nil {
		c.o.Logger.Info("console: component registered", "component", resp.GetComponent().GetId())
		http.Redirect(w, r, "/console/components/"+resp.GetComponent().GetId()+"?registered=1", http.StatusSeeOther)
		return
	}
	if f.Errors = componentFieldErrors(err); len(f.Errors) == 0 {
		c.apiError(w, r, s, err)
		return
	}
	c.render(w, "component_new", http.StatusBadRequest, pageData{Title: "Register a third-party platform", Nav: "components", CSRF: s.csrf(), Who: s.who(), Body: f})
}

type componentBody struct {
	C           *wxrelayv1.Component
	Health      string
	Authorizers []*wxrelayv1.ListAuthorizersResponse_Authorizer
	// Next is the query of the next page of authorizers; "" on the last.
	Next string
}

func (c *Console) componentPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := callCtx(r.Context(), s)
	comp, err := c.components.GetComponent(ctx, &wxrelayv1.GetComponentRequest{Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	auths, err := c.components.ListAuthorizers(ctx, &wxrelayv1.ListAuthorizersRequest{Id: comp.GetId(), PageSize: 100, PageToken: r.URL.Query().Get("page")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	next := ""
	if tok := auths.GetNextPageToken(); tok != "" {
		next = url.Values{"page": {tok}}.Encode()
	}
	flash := ""
	if r.URL.Query().Get("registered") != "" {
		flash = "Registered. Paste the two URLs below on the open platform; the first ticket arrives within 10 minutes."
	}
	c.render(w, "component", http.StatusOK, pageData{Title: cmp.Or(comp.GetDisplayName(), comp.GetComponentAppid()), Nav: "components",
		CSRF: s.csrf(), Who: s.who(), Flash: flash, Body: componentBody{C: comp, Health: healthName(comp.GetHealth().GetState()), Authorizers: auths.GetAuthorizers(), Next: next}})
}

// authorizationURL makes a fresh consent link for a component's tenant
// and shows it on the tenant's page, to send to the merchant.
func (c *Console) authorizationURL(w http.ResponseWriter, r *http.Request, s *session) {
	link, err := c.tenants.AuthorizationUrl(callCtx(r.Context(), s), &wxrelayv1.AuthorizationUrlRequest{Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	c.showTenantWith(w, r, s, func(b *tenantBody) { b.ConsentURL, b.ConsentExpires = link.GetUrl(), link.GetExpireTime() })
}

// componentFieldErrors are the API's complaints about a component form,
// by field ("" for one about no field); none for an error that is not
// the form's.
func componentFieldErrors(err error) map[string]string {
	st := status.Convert(err)
	switch st.Code() {
	case codes.InvalidArgument, codes.AlreadyExists:
	default:
		return nil
	}
	v := fieldViolations(st)
	if st.Code() == codes.AlreadyExists {
		v["component_appid"] = st.Message() // registered already: say by which
	}
	if len(v) == 0 {
		v[""] = st.Message()
	}
	return v
}
