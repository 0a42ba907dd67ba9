package api_test

import "testing"

// TestUsedKeyRevokedAtOnce checks that an API key that has already been
// accepted (and so remembered by the Authenticator) stops working at once
// when it is rotated, or its tenant deleted, and that a key differing from
// a remembered one by a character is not taken for it.
func TestUsedKeyRevokedAtOnce(t *testing.T) {
	e := newEnv(t)
	rotated := e.createTenant(validTenant())
	deleted := e.createTenant(validTenant())
	for _, c := range []created{rotated, deleted} {
		for range 2 {
			e.mustStatus(e.do("GET", "/v1/tenants/"+c.id, c.apiKey, nil), 200)
		}
	}

	tampered := []byte(rotated.apiKey)
	tampered[len(tampered)-2] ^= 1
	e.mustStatus(e.do("GET", "/v1/tenants/"+rotated.id, string(tampered), nil), 401)

	e.mustStatus(e.do("POST", "/v1/tenants/"+rotated.id+":rotateApiKey", e.admin, "{}"), 200)
	e.mustStatus(e.do("GET", "/v1/tenants/"+rotated.id, rotated.apiKey, nil), 401)

	e.mustStatus(e.do("DELETE", "/v1/tenants/"+deleted.id, e.admin, nil), 200)
	e.mustStatus(e.do("GET", "/v1/tenants/"+deleted.id, deleted.apiKey, nil), 401)
}
