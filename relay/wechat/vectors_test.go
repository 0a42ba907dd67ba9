package wechat

import (
	"bytes"
	"strings"
	"testing"
)

// The test vectors of docs/protocol.md §4, each named by its source: O
// the official message-push doc, V1 the official WXBizMsgCrypt sample, V2,
// V3 and V5 SDKs' test suites. Where a source quotes only part of its data
// (V1's reply direction, V2's second message, V3's reply and echostr), the
// rest is taken from the file it names.

// O: the official mini-program message-push doc. JSON format.
const (
	oToken = "AAAAA"
	oKey   = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // 32 zero bytes
	oAppID = "wxba5fad812f8e6fb9"

	o2Body = `{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714037059,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}`

	o3Query = "signature=6c5c811b55cc85e0e1b54100749188c20beb3f5d&timestamp=1714112445&nonce=415670741&openid=o9AgO5Kd5ggOC-bXrbNODIiE3bGY&encrypt_type=aes&msg_signature=046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
	o3Body  = `{"ToUserName":"gh_97417a04a28d","Encrypt":"+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="}`
	// o3Inner is what o3Body decrypts to: o2Body with the push's CreateTime.
	o3Inner = `{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}`

	o4Encrypt = "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ=="
)

// V1: the official WXBizMsgCrypt sample (conetse/WXBizMsgCrypt WXBizMsgCrypt_test.go).
const (
	v1Token = "spamtest"
	v1Key   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" // non-zero trailing bits
	v1AppID = "wx2c2769f8efd9abc2"
	v1TS    = "1409735669"
	v1Nonce = "1320562132"

	v1MsgSignature = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
	v1Encrypt      = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
	v1Inner        = "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>"
	// v1Body is the sample's compatible-mode push: plaintext fields plus Encrypt.
	v1Body = "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[" + v1Encrypt + "]]></Encrypt></xml>"

	// v1Reply is the sample's reply direction: an encrypted passive reply.
	v1ReplySignature = "ea7a2ac5580e3c67d663b42c63b976b7e2bf26b9"
	// v1ReplyInner is the sample's to_xml, odd spacing and all.
	v1ReplyInner = " <xml><ToUserName><![CDATA[oia2TjjewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType>  <![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo中文]]></Title><Descript  ion><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>"
	v1Reply      = "<xml><Encrypt><![CDATA[QCTqNwyPmqRu4xuyqVsja3pIr0TeNW/5tIi3Ul+15UnsdXcZoLmTZJtCxJn7e5lKBp7A5lykhD8Hsejz9M+OBTXLrkuqRD0Ky0fkfk4ZCIZhHc+pWuNZjalZGDQ3tzz2rCfn2pzEHGE3jnSWP4EdLdailWTo/Hz7gxBnLf2xI3xsS9kxyErmv14LhdccB7hVqa224efcb5lT85XKfrku7b4W5L7MA6g8/TYBFrkHCZz9l9sjMgEzNkErAHdayzM6eKCOUm51PQv0Sp3jPjq7NEUi9DZa8nnrz/w3P5clO+Hmf6yqwJZAE26+nGYtltcZmOu8UCZrqZDkAD+MwPeYSGo4C1j6R71zsBwI3sk/Bea52AAGqjvGVPGK3oTvku775T93MwTzjJMZTxX3xF2QrPbbU5pFIBZWF8KW0Giuqui500qRz9Ix5oVK3TK4ZCCZpHJelUvy5gcP4ldbDStZhQaM21pdlitL6Kt/GucIpIWHkxiObKu1pBfU94cR0ZCgoja8E6xtx+cGMIgCN33/QHkwM+xeb6rCF0HhDZwd9TwdetxpRbqRDkfzc+LaeoF8HHbFhK+3tKP9qZBAdZm1v4YUFK2db1juaoyXHAXFDn3I8PZ5zSP8vddBDSfoLgv+]]></Encrypt><MsgSignature><![CDATA[" + v1ReplySignature + "]]></MsgSignature><TimeStamp>1409735669</TimeStamp><Nonce><![CDATA[1320562132]]></Nonce></xml>"
)

// V2: WxJava WxCryptUtilTest (deterministic encryption).
const (
	v2Key    = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	v2AppID  = "wxb11529c136998cb6"
	v2Random = "aaaabbbbccccdddd"

	v2Msg1     = "我是中文abcd123"
	v2Encrypt1 = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
	v2Msg2     = "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>"
	v2Encrypt2 = "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb"
)

// V3: wechatpy tests/test_crypto.py (WeCom, same algorithm; the id is a CorpID).
const (
	v3Token = "123456"
	v3Key   = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
	v3AppID = "wx49f0ab532d5d035a"
	v3TS    = "1411525903"
	v3Nonce = "461056294"

	v3MsgSignature = "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
	v3Body         = "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>\n<AgentID><![CDATA[1]]></AgentID>\n</xml>"

	v3Random         = "1234567890123456"
	v3Reply          = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
	v3ReplyPrefix    = "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3" // as quoted in the protocol doc
	v3ReplyEncrypt   = "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
	v3ReplySignature = "407518b7649e86ef23978113f92d27afa9296533"
	v3EchoSignature  = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
	v3EchoTS         = "1411443780"
	v3EchoNonce      = "437374425"
	v3EchoEncrypted  = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
	v3EchoDecrypted  = "5927782489442352469"
	v5PowerToken     = "pcoLldqMu2WQQtYBeDX5HiXPsBFlTnDM"
	v5PowerKey       = "CyjBvGm4tJNmcThkeL5Wajzom4jKlBygKtpTkYeqsnE"
	v5PowerTrailer   = "wwedab3d5fc43636d8"
	v5PowerSignature = "d728d2bea7e28585ebd14eacbd330d84073fe7f1"
	v5PowerEncrypt   = "ZBY4h9SD1Y/v+ighMGU4yHSVWyMuf2UdQQfFuB8S/SY5il9MynR1rtKIJDG871vOqaCs0FVje6bX0VyhvL02PG7FXjRR+rAyiwVv7T7nBGgamkPeOv4n/jXgFQnY6NEt3Zym09t4aI+21pDcE6uN6JzcC+hxw5sBfVyza3NHyuLiyhvalsFbasA4HNcnK+4/3eZLMo+e6yvHUsY4WhmZWW5u5mHcDZm1jtI2fUtzod6Sx7PrCOhm+zUO1I98OD0EmICxHHMjMkGmSFuGhG8vXRKaRavzvV/fkscZK1HjW+XJOV0c9wYDZT+/LTjDS/yx5KkM5lIksiw57DsCro9gvmE1WdvB3bw3m+5ie2x1ZRSuh6ik1rbMTiXgJXt0MnbV8VsyPe1zhkbug1cwdhT9zcOTieb0oyiIl3wSAEkNNBNBaWB+78V1hM/ngMoZgKaaasJUCGtPH/rN+YnxGicDOg=="
	v5PowerDecrypted = "<xml><ToUserName><![CDATA[wwedab3d5fc43636d8]]></ToUserName><FromUserName><![CDATA[WangChaoYi]]></FromUserName><CreateTime>1623301925</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[密文测试]]></Content><MsgId>6972028683187026694</MsgId><AgentID>1000005</AgentID></xml>"
	v5PowerTimestamp = "1623301925"
	v5PowerNonce     = "1624217036"
	v5NodeToken      = "RMNlACHlV5ThzfRlVS4D4"
	v5NodeSignature  = "8edac0945683c119ee71c9f6256d76c48aa08a96"
	v5SilenceperSHA1 = "a9993e364706816aba3e25717850c26c9cd0d89d"
)

func TestVectorSignatures(t *testing.T) {
	for _, tt := range []struct {
		name  string
		parts []string
		want  string
	}{
		{"O1 URL verification", []string{oToken, "1714036504", "1514711492"}, "f464b24fc39322e44b38aa78f5edd27bd1441696"},
		{"O2 plaintext push", []string{oToken, "1714037059", "486452656"}, "899cf89e464efb63f54ddac96b0a0a235f53aa78"},
		{"O3 signature", []string{oToken, "1714112445", "415670741"}, "6c5c811b55cc85e0e1b54100749188c20beb3f5d"},
		{"O3 msg_signature", []string{oToken, "1714112445", "415670741", mustEnvelope(t, o3Body).Encrypt}, "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"},
		{"O4 reply", []string{oToken, "1713424427", "415670741", o4Encrypt}, "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1"},
		{"V1 push", []string{v1Token, v1TS, v1Nonce, v1Encrypt}, v1MsgSignature},
		{"V1 reply", []string{v1Token, v1TS, v1Nonce, mustEnvelope(t, v1Reply).Encrypt}, v1ReplySignature},
		{"V3 push", []string{v3Token, v3TS, v3Nonce, mustEnvelope(t, v3Body).Encrypt}, v3MsgSignature},
		{"V3 reply", []string{v3Token, v3TS, v3Nonce, v3ReplyEncrypt}, v3ReplySignature},
		{"V3 echostr", []string{v3Token, v3EchoTS, v3EchoNonce, v3EchoEncrypted}, v3EchoSignature},
		{"V5 wechat-crypto", []string{v5NodeToken, "timestamp", "nonce", "encrypt"}, v5NodeSignature},
		{"V5 silenceper", []string{"a", "b", "c"}, v5SilenceperSHA1},
		{"V5 silenceper unsorted", []string{"c", "a", "b"}, v5SilenceperSHA1},
		{"V5 PowerWeChat", []string{v5PowerToken, v5PowerTimestamp, v5PowerNonce, v5PowerEncrypt}, v5PowerSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sign(tt.parts...); got != tt.want {
				t.Errorf("Sign(%q) = %s, want %s", tt.parts, got, tt.want)
			}
			if !VerifySignature(tt.want, tt.parts...) {
				t.Errorf("VerifySignature(%s, …) = false, want true", tt.want)
			}
		})
	}
}

func TestVectorO1URLVerification(t *testing.T) {
	q := mustQuery(t, "signature=f464b24fc39322e44b38aa78f5edd27bd1441696&echostr=4375120948345356249&timestamp=1714036504&nonce=1514711492")
	got, err := VerifyURL(oToken, q)
	wantErr(t, "VerifyURL", err, nil)
	if want := "4375120948345356249"; got != want {
		t.Errorf("VerifyURL echostr = %q, want %q", got, want)
	}
	if got := URLVerificationQuery(oToken, 1714036504, "1514711492", "4375120948345356249"); got.Encode() != q.Encode() {
		t.Errorf("URLVerificationQuery = %s, want %s", got.Encode(), q.Encode())
	}
}

func TestVectorO2PlaintextPush(t *testing.T) {
	q := mustQuery(t, "signature=899cf89e464efb63f54ddac96b0a0a235f53aa78&timestamp=1714037059&nonce=486452656")
	rcv := &Receiver{Token: oToken, Mode: ModePlaintext, OriginalID: "gh_97417a04a28d"}
	m, err := rcv.Receive(q, []byte(o2Body))
	wantErr(t, "Receive", err, nil)
	want := Message{
		Format: FormatJSON, ToUserName: "gh_97417a04a28d", FromUserName: "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
		CreateTime: 1714037059, MsgType: "event", Event: "debug_demo",
		Data: []byte(`{"CreateTime":1714037059,"Event":"debug_demo","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","MsgType":"event","ToUserName":"gh_97417a04a28d","debug_str":"hello world"}`),
	}
	assertMessage(t, m, &want)

	// The simulator's side produces the same request.
	req, err := (&Pusher{Token: oToken}).Push([]byte(o2Body), 1714037059, "486452656")
	wantErr(t, "Push", err, nil)
	if got, want := req.RawQuery(), "signature=899cf89e464efb63f54ddac96b0a0a235f53aa78&timestamp=1714037059&nonce=486452656"; got != want {
		t.Errorf("Push query = %s, want %s", got, want)
	}
	if !bytes.Equal(req.Body, []byte(o2Body)) {
		t.Errorf("Push body = %s, want %s", req.Body, o2Body)
	}
}

func TestVectorO3SafePush(t *testing.T) {
	c := mustCipher(t, oKey, oAppID)
	q := mustQuery(t, o3Query)

	// The official safe-mode request, received.
	rcv := &Receiver{Token: oToken, Mode: ModeSafe, Cipher: c, OriginalID: "gh_97417a04a28d"}
	m, err := rcv.Receive(q, []byte(o3Body))
	wantErr(t, "Receive", err, nil)
	if m.CreateTime != 1714112445 || m.Event != "debug_demo" || m.FromUserName != q.Get("openid") {
		t.Errorf("Receive = %+v, want the debug_demo event of 1714112445 from %s", m, q.Get("openid"))
	}
	// signature is valid too, though safe mode does not rely on it.
	if !VerifySignature(q.Get("signature"), oToken, q.Get("timestamp"), q.Get("nonce")) {
		t.Error("O3 signature does not verify")
	}

	// The frame: random a8eedb185eb2fecf, msg_len 167, ciphertext 224 bytes.
	inner, err := c.Decrypt(mustEnvelope(t, o3Body).Encrypt)
	wantErr(t, "Decrypt", err, nil)
	if string(inner) != o3Inner || len(inner) != 167 {
		t.Errorf("Decrypt = %d bytes %s, want 167 bytes %s", len(inner), inner, o3Inner)
	}

	// Re-encoded with the same random prefix, the push is byte-exact.
	p := &Pusher{Token: oToken, Mode: ModeSafe, Cipher: c}
	req, err := p.PushWithRandom(random16(t, "a8eedb185eb2fecf"), []byte(o3Inner), 1714112445, "415670741")
	wantErr(t, "PushWithRandom", err, nil)
	if got := req.RawQuery(); got != o3Query {
		t.Errorf("PushWithRandom query =\n%s\nwant\n%s", got, o3Query)
	}
	if string(req.Body) != o3Body {
		t.Errorf("PushWithRandom body =\n%s\nwant\n%s", req.Body, o3Body)
	}
	if got, want := req.ContentType, "application/json"; got != want {
		t.Errorf("PushWithRandom content type = %q, want %q", got, want)
	}
}

func TestVectorO4EncryptedReply(t *testing.T) {
	c := mustCipher(t, oKey, oAppID)
	msg := []byte(`{"demo_resp":"good luck"}`)
	r, err := SealReplyWithRandom(c, oToken, random16(t, "707722b803182950"), msg, 1713424427, "415670741")
	wantErr(t, "SealReplyWithRandom", err, nil)
	want := `{"Encrypt":"` + o4Encrypt + `","MsgSignature":"1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1","TimeStamp":1713424427,"Nonce":"415670741"}`
	if got := string(r.Encode(FormatJSON)); got != want {
		t.Errorf("Encode(JSON) =\n%s\nwant\n%s", got, want)
	}
	parsed, err := ParseEncryptedReply([]byte(want))
	wantErr(t, "ParseEncryptedReply", err, nil)
	opened, err := parsed.Open(c, oToken)
	wantErr(t, "Open", err, nil)
	if !bytes.Equal(opened, msg) {
		t.Errorf("Open = %s, want %s", opened, msg)
	}
}

func TestVectorV1Sample(t *testing.T) {
	c := mustCipher(t, v1Key, v1AppID)

	t.Run("decrypt", func(t *testing.T) {
		got, err := c.Decrypt(v1Encrypt)
		wantErr(t, "Decrypt", err, nil)
		if string(got) != v1Inner {
			t.Errorf("Decrypt =\n%q\nwant\n%q", got, v1Inner)
		}
	})
	t.Run("compatible push", func(t *testing.T) {
		q := mustQuery(t, "timestamp="+v1TS+"&nonce="+v1Nonce+"&encrypt_type=aes&msg_signature="+v1MsgSignature)
		rcv := &Receiver{Token: v1Token, Mode: ModeCompatible, Cipher: c, OriginalID: "gh_10f6c3c3ac5a"}
		m, err := rcv.Receive(q, []byte(v1Body))
		wantErr(t, "Receive", err, nil)
		want := Message{
			Format: FormatXML, ToUserName: "gh_10f6c3c3ac5a", FromUserName: "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
			CreateTime: 1409735668, MsgType: "text", MsgID: "6054768590064713728",
			Data: []byte(`{"Content":"abcdteT","CreateTime":1409735668,"FromUserName":"oyORnuP8q7ou2gfYjqLzSIWZf0rs","MsgId":6054768590064713728,"MsgType":"text","ToUserName":"gh_10f6c3c3ac5a"}`),
		}
		assertMessage(t, m, &want)
	})
	t.Run("reply direction", func(t *testing.T) {
		r, err := ParseEncryptedReply([]byte(v1Reply))
		wantErr(t, "ParseEncryptedReply", err, nil)
		if r.TimeStamp != 1409735669 || r.Nonce != v1Nonce || r.MsgSignature != v1ReplySignature {
			t.Errorf("ParseEncryptedReply = %+v, want TimeStamp %s, Nonce %s, MsgSignature %s", r, v1TS, v1Nonce, v1ReplySignature)
		}
		got, err := r.Open(c, v1Token)
		wantErr(t, "Open", err, nil)
		if string(got) != v1ReplyInner {
			t.Errorf("Open =\n%q\nwant\n%q", got, v1ReplyInner)
		}
	})
}

func TestVectorV2DeterministicEncrypt(t *testing.T) {
	c := mustCipher(t, v2Key, v2AppID)
	for _, tt := range []struct {
		name, msg, want string
	}{
		{"afterAesEncrypt", v2Msg1, v2Encrypt1},
		{"afterAesEncrypt2", v2Msg2, v2Encrypt2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.EncryptWithRandom(random16(t, v2Random), []byte(tt.msg))
			wantErr(t, "EncryptWithRandom", err, nil)
			if got != tt.want {
				t.Errorf("EncryptWithRandom =\n%s\nwant\n%s", got, tt.want)
			}
			back, err := c.Decrypt(tt.want)
			wantErr(t, "Decrypt", err, nil)
			if string(back) != tt.msg {
				t.Errorf("Decrypt = %q, want %q", back, tt.msg)
			}
		})
	}
}

func TestVectorV3WeCom(t *testing.T) {
	c := mustCipher(t, v3Key, v3AppID)

	t.Run("decrypt", func(t *testing.T) {
		q := mustQuery(t, "timestamp="+v3TS+"&nonce="+v3Nonce+"&msg_signature="+v3MsgSignature)
		m, err := (&Receiver{Token: v3Token, Mode: ModeSafe, Cipher: c}).Receive(q, []byte(v3Body))
		wantErr(t, "Receive", err, nil)
		if m.FromUserName != "messense" || m.MsgType != "text" || m.MsgID != "4363689963896700987" {
			t.Errorf("Receive = %+v, want text from messense with MsgId 4363689963896700987", m)
		}
		if !bytes.Contains(m.Data, []byte(`"Content":"test"`)) {
			t.Errorf("Data = %s, want Content test", m.Data)
		}
	})
	t.Run("encrypt", func(t *testing.T) {
		ts, _ := parseInt(v3TS)
		r, err := SealReplyWithRandom(c, v3Token, random16(t, v3Random), []byte(v3Reply), ts, v3Nonce)
		wantErr(t, "SealReplyWithRandom", err, nil)
		if !strings.HasPrefix(r.Encrypt, v3ReplyPrefix) {
			t.Errorf("Encrypt = %s…, want prefix %s", r.Encrypt[:len(v3ReplyPrefix)], v3ReplyPrefix)
		}
		if r.Encrypt != v3ReplyEncrypt { // the full value from wechatpy's test
			t.Errorf("Encrypt =\n%s\nwant\n%s", r.Encrypt, v3ReplyEncrypt)
		}
		if r.MsgSignature != v3ReplySignature {
			t.Errorf("MsgSignature = %s, want %s", r.MsgSignature, v3ReplySignature)
		}
	})
	t.Run("encrypted echostr", func(t *testing.T) {
		// WeCom only: mini programs never encrypt echostr. Decrypt-only check.
		if !VerifySignature(v3EchoSignature, v3Token, v3EchoTS, v3EchoNonce, v3EchoEncrypted) {
			t.Error("echostr msg_signature does not verify")
		}
		got, err := c.Decrypt(v3EchoEncrypted)
		wantErr(t, "Decrypt", err, nil)
		if string(got) != v3EchoDecrypted {
			t.Errorf("Decrypt = %q, want %q", got, v3EchoDecrypted)
		}
	})
}

func TestVectorV5PowerWeChatTrailer(t *testing.T) {
	got, err := mustCipher(t, v5PowerKey, v5PowerTrailer).Decrypt(v5PowerEncrypt)
	wantErr(t, "Decrypt", err, nil)
	if string(got) != v5PowerDecrypted {
		t.Errorf("Decrypt = %q, want %q", got, v5PowerDecrypted)
	}
	// PowerWeChat's own test configures the AgentID as the id; the trailer
	// check must refuse that.
	_, err = mustCipher(t, v5PowerKey, "1000005").Decrypt(v5PowerEncrypt)
	wantErr(t, "Decrypt with the AgentID", err, ErrAppIDMismatch)
}

func mustEnvelope(tb testing.TB, body string) *Envelope {
	tb.Helper()
	env, err := ParseEnvelope([]byte(body))
	if err != nil {
		tb.Fatalf("ParseEnvelope: %v", err)
	}
	return env
}

// assertMessage compares every field of got with want.
func assertMessage(tb testing.TB, got, want *Message) {
	tb.Helper()
	if got.Format != want.Format || got.ToUserName != want.ToUserName || got.FromUserName != want.FromUserName ||
		got.CreateTime != want.CreateTime || got.MsgType != want.MsgType || got.Event != want.Event || got.MsgID != want.MsgID {
		tb.Errorf("message =\n%+v\nwant\n%+v", *got, *want)
	}
	if !bytes.Equal(got.Data, want.Data) {
		tb.Errorf("Data =\n%s\nwant\n%s", got.Data, want.Data)
	}
}
