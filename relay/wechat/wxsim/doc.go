// Package wxsim is a fake of the WeChat API (api.weixin.qq.com) for testing
// wxrelay, which cannot reach the real one. It serves the endpoints the
// relay calls with WeChat's token lifetimes, validation, error codes and
// errmsg format, following docs/protocol.md §6–§8, and records what
// it received so tests can assert what the relay sent.
//
// A [Server] is an http.Handler: run it in-process with net/http/httptest,
// or as a separate process with "wxsim serve". Inject a clock to move time:
//
//	sim := wxsim.New(wxsim.Options{Now: clock.Now})
//	sim.AddApp("wx0123456789abcdef", "secret")
//	ts := httptest.NewServer(sim)
//	// point the relay at ts.URL, then inspect sim.Calls(), sim.TokenCounts(appid)
//
// # WeChat endpoints
//
// All answer HTTP 200, errors included, as WeChat does. Every errmsg ends in
// " rid: xxxxxxxx-xxxxxxxx-xxxxxxxx", so clients must match errcode only.
//
//	GET  /cgi-bin/token?grant_type=client_credential&appid=&secret=
//	POST /cgi-bin/stable_token          {"grant_type","appid","secret","force_refresh"}
//	POST /cgi-bin/message/custom/send?access_token=       and /custom/business/send
//	POST /cgi-bin/message/custom/typing?access_token=     and /custom/business/typing
//	POST /cgi-bin/media/upload?access_token=&type=image   multipart/form-data, part "media"
//	GET  /cgi-bin/media/get?access_token=&media_id=
//
// Any other path under /cgi-bin/ answers 404 and is recorded.
//
// # Tokens
//
// Tokens are 128 random base64url characters and live two hours. A classic
// token (/cgi-bin/token) is superseded by every new one and then works five
// more minutes. A stable token (/cgi-bin/stable_token) is returned
// unchanged until its last five minutes, when a call gets a new one and the
// old lives out its two hours; force_refresh kills it at once, at most 20
// times per Beijing day (then 45009), and is a no-op within 30 s of the last
// forced refresh. The two families never affect each other.
//
// An API call's access_token answers 41001 when missing, 40014 when it is
// not shaped like a token, 40001 when it is shaped like one but unknown, or
// superseded, or invalidated, and 42001 when it expired. The protocol
// notes list both 40001 and 40014 as "invalid token"; splitting them by
// shape lets tests reach both, and the relay treats them alike (refresh
// once and retry, protocol §6).
//
// # Messages and media
//
// A send needs touser (40003), a known msgtype (40008) and its payload:
// text.content non-empty (44004) and at most 2048 bytes (45002); an image
// or card thumbnail media id this app uploaded within three days (40007);
// link title, description, url and thumb_url, and card title and pagepath
// (47001). An empty body is 44002, one that is not a JSON object 47001.
// Typing takes "Typing" or "CancelTyping" (45072).
//
// An upload must be type=image (40004) with a "media" part that has a
// filename (41005) and a Content-Type (40005); its bytes must sniff as JPEG,
// PNG, GIF or BMP (40004), be non-empty (44001) and fit
// Options.MaxUploadBytes, 10 MiB by default (40009). media/get returns the
// bytes with their image Content-Type and
// `Content-disposition: attachment; filename="ID.png"`, or JSON 40007.
//
// # Test controls
//
// Each Go method has an HTTP twin under /wxsim/, for tests that run wxsim
// as a process. Mutations answer 204, bad requests 400.
//
//	AddApp(appid, secret)         POST   /wxsim/apps {"appid","secret"}
//	InvalidateTokens(appid)       POST   /wxsim/apps/{appid}/invalidate
//	FailNext(n, path)             POST   /wxsim/faults/system-error {"count","path"}
//	RejectSends(openid, errcode)  POST   /wxsim/faults/reject {"openid","errcode"}
//	SetLatency(d)                 POST   /wxsim/faults/latency {"latency":"250ms"}
//	SetIPWhitelist(on)            POST   /wxsim/faults/ip-whitelist {"enabled"}
//	ClearFaults()                 DELETE /wxsim/faults
//	Calls(), TokenCounts(appid)   GET    /wxsim/calls[?path=]
//	Reset()                       POST   /wxsim/reset
//
// Each received call is recorded as a [Call]: its path, appid, JSON body
// verbatim, whether that body HTML-escaped <, > or & (which the relay must
// never do, protocol §8), and the errcode answered.
package wxsim
