package console

import (
	"net/http"
	"net/url"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
)

// operatorsBody is the Operators page: who may run the relay, and a key
// just made, shown this once.
type operatorsBody struct {
	Operators []*wxrelayv1.Operator
	NewName   string
	NewKey    string
	Error     string
}

func (c *Console) operatorList(w http.ResponseWriter, r *http.Request, s *session) {
	c.showOperators(w, r, s, operatorsBody{}, http.StatusOK)
}

// showOperators renders the Operators page with b's notices.
func (c *Console) showOperators(w http.ResponseWriter, r *http.Request, s *session, b operatorsBody, code int) {
	resp, err := c.ops.ListOperators(callCtx(r.Context(), s), &wxrelayv1.ListOperatorsRequest{})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	b.Operators = resp.GetOperators()
	flash := ""
	if r.URL.Query().Get("removed") != "" {
		flash = "Removed: their key, and every console session it opened, stopped working."
	}
	c.render(w, "operators", code, pageData{Title: "Operators", Nav: "operators", CSRF: s.csrf(), Who: s.who(), Flash: flash, Body: b})
}

// createOperator adds an operator and shows their key once.
func (c *Console) createOperator(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PostFormValue("name")
	role := wxrelayv1.Operator_ROLE_ADMIN
	if r.PostFormValue("role") == "viewer" {
		role = wxrelayv1.Operator_ROLE_VIEWER
	}
	resp, err := c.ops.CreateOperator(callCtx(r.Context(), s), &wxrelayv1.CreateOperatorRequest{Name: name, Role: role})
	switch st, _ := status.FromError(err); {
	case err == nil:
		c.o.Logger.Info("console: operator added", "operator", resp.GetOperator().GetName(), "role", resp.GetOperator().GetRole().String(), "by", s.who().Name)
		c.showOperators(w, r, s, operatorsBody{NewName: resp.GetOperator().GetName(), NewKey: resp.GetKey()}, http.StatusOK)
	case st.Code() == codes.InvalidArgument || st.Code() == codes.AlreadyExists:
		c.showOperators(w, r, s, operatorsBody{Error: st.Message()}, http.StatusBadRequest)
	default:
		c.apiError(w, r, s, err)
	}
}

// rotateOperatorKey issues an operator a new key and shows it once.
func (c *Console) rotateOperatorKey(w http.ResponseWriter, r *http.Request, s *session) {
	resp, err := c.ops.RotateOperatorKey(callCtx(r.Context(), s), &wxrelayv1.RotateOperatorKeyRequest{Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	c.o.Logger.Info("console: operator key rotated", "operator", resp.GetOperator().GetName(), "by", s.who().Name)
	if resp.GetOperator().GetName() == s.who().Name {
		// Their own: this session held the old key, and ends with it.
		http.Redirect(w, r, "/console/login?expired=1", http.StatusSeeOther)
		return
	}
	c.showOperators(w, r, s, operatorsBody{NewName: resp.GetOperator().GetName(), NewKey: resp.GetKey()}, http.StatusOK)
}

func (c *Console) deleteOperator(w http.ResponseWriter, r *http.Request, s *session) {
	if _, err := c.ops.DeleteOperator(callCtx(r.Context(), s), &wxrelayv1.DeleteOperatorRequest{Id: r.PathValue("id")}); err != nil {
		c.apiError(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/console/operators?removed=1", http.StatusSeeOther)
}

// auditBody is a page of the audit log.
type auditBody struct {
	Entries []*wxrelayv1.AuditEntry
	Next    string // the query of the next page, "" at the end
}

func (c *Console) auditList(w http.ResponseWriter, r *http.Request, s *session) {
	resp, err := c.audit.ListAuditEntries(callCtx(r.Context(), s), &wxrelayv1.ListAuditEntriesRequest{PageSize: 100, PageToken: r.URL.Query().Get("page")})
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	b := auditBody{Entries: resp.GetEntries()}
	if next := resp.GetNextPageToken(); next != "" {
		b.Next = url.Values{"page": {next}}.Encode()
	}
	c.render(w, "audit", http.StatusOK, pageData{Title: "Audit log", Nav: "audit", CSRF: s.csrf(), Who: s.who(), Body: b})
}
