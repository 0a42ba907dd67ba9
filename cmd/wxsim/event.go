package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// eventMessage builds an event relay/wechat has no builder for, such as
// debug_demo or wxa_media_check, the way WeChat writes events: the common
// fields, Event, then fields as strings (CDATA in XML).
func eventMessage(f wechat.Format, h wechat.Header, event string, fields [][2]string) []byte {
	all := append([][2]string{
		{"ToUserName", h.ToUserName},
		{"FromUserName", h.FromUserName},
		{"CreateTime", ""}, // a number, written below
		{"MsgType", "event"},
		{"Event", event},
	}, fields...)
	createTime := strconv.FormatInt(h.CreateTime, 10)
	var b bytes.Buffer
	if f == wechat.FormatJSON {
		b.WriteByte('{')
		for i, kv := range all {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, kv[0])
			b.WriteByte(':')
			if kv[0] == "CreateTime" {
				b.WriteString(createTime)
			} else {
				writeJSONString(&b, kv[1])
			}
		}
		b.WriteByte('}')
		return b.Bytes()
	}
	b.WriteString("<xml>")
	for _, kv := range all {
		b.WriteString("<" + kv[0] + ">")
		if kv[0] == "CreateTime" {
			b.WriteString(createTime)
		} else {
			// A "]]>" in the value would end the section: split it across two.
			b.WriteString("<![CDATA[" + strings.ReplaceAll(kv[1], "]]>", "]]]]><![CDATA[>") + "]]>")
		}
		b.WriteString("</" + kv[0] + ">")
	}
	b.WriteString("</xml>")
	return b.Bytes()
}

// writeJSONString writes s as a JSON string without escaping <, > and &,
// as WeChat does.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)           // a string always encodes
	b.Truncate(b.Len() - 1) // Encode's newline
}
