package component

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// ReleaseCheckHandler serves POST /wxc/{id}/wxd101a85aa106f53e, the
// message URL of the test mini program WeChat authorizes to a component
// for its full-network release check (wechat.ReleaseTestAppID): the
// platform passes with no code of its own. The check's text,
// QUERY_AUTH_CODE:<code>, is kept durably with the authorization events,
// answered empty at once, and acted on at once by the Authorizer
// (AnswerReleaseChecks), with the job as the fallback. The test mini program is WeChat's, never a
// merchant's, so its pushes go to no tenant.
type ReleaseCheckHandler struct {
	pushURL
	answer func()
}

// NewReleaseCheckHandler returns a ReleaseCheckHandler; answer (the
// Authorizer's AnswerReleaseChecks) has the check acted on now.
func NewReleaseCheckHandler(o Options, answer func()) *ReleaseCheckHandler {
	return &ReleaseCheckHandler{newPushURL(o), answer}
}

func (h *ReleaseCheckHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, q, body, now, ok := h.admit(w, r)
	if !ok {
		return
	}
	cipher, ok := h.cipher(w, r, c)
	if !ok {
		return
	}
	rcv := &wechat.Receiver{Token: c.Secrets.Token, Mode: wechat.ModeSafe, Cipher: cipher}
	msg, err := rcv.Receive(q, body)
	if refused(w, err) {
		return
	}
	var fields struct {
		Content string `json:"Content"`
	}
	json.Unmarshal(msg.Data, &fields)
	code, isCheck := wechat.ReleaseCheckCode(fields.Content)
	if msg.MsgType != "text" || !isCheck {
		// Nothing else of the test mini program's is relayed anywhere.
		w.WriteHeader(http.StatusOK)
		return
	}
	check, err := json.Marshal(releaseCheck{OpenID: msg.FromUserName, Code: code})
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), commitTimeout)
	defer cancel()
	err = h.store.SaveComponentPush(ctx, c.ID, tenant.ComponentPush{InfoType: wechat.InfoQueryAuthCode,
		AuthorizerAppID: wechat.ReleaseTestAppID, CreateTime: msg.CreateTime, Body: check, ReceiveTime: now.UTC()})
	if err != nil {
		// Not kept: WeChat pushes again.
		h.log.ErrorContext(ctx, "release check not stored", "component", c.ID, "err", err)
		http.Error(w, "not stored", http.StatusInternalServerError)
		return
	}
	h.log.InfoContext(ctx, "release check received", "component", c.ID)
	w.WriteHeader(http.StatusOK) // the empty answer the check wants
	h.answer()
}
