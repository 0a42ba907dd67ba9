package api_test

import (
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wxrelay/wxrelay/api"
	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
)

// slowUpload starts a multipart upload for tenant id whose body never
// ends, and returns once the relay answers (never, while it reads) or ctx
// ends; the returned channel yields the status.
func (e *env) slowUpload(ctx context.Context, id, token string) <-chan int {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, _ := mw.CreateFormFile("media", "slow.png")
		part.Write(smallPNG(e.t)) // and never the end
		<-ctx.Done()
		pw.CloseWithError(ctx.Err())
	}()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.url+mediaPath(id), pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	done := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	return done
}

// TestRevokedKeysAreRefusedUnread: the check before a body is read asks
// whether an API key is current, not only whether the relay signed it: a
// rotated key's or a deleted tenant's body that never ends still gets its
// 401 at once, over REST and (before its message) over gRPC.
func TestRevokedKeysAreRefusedUnread(t *testing.T) {
	e := newEnv(t)
	rotated := e.wxTenant()
	e.mustStatus(e.do("POST", "/v1/tenants/"+rotated.id+":rotateApiKey", e.admin, nil), 200)
	deleted := e.wxTenant()
	e.mustStatus(e.do("DELETE", "/v1/tenants/"+deleted.id, e.admin, nil), 200)
	for _, tt := range []struct {
		name string
		tn   created
		path string
	}{
		{"send, rotated key", rotated, sendPath(rotated.id)},
		{"upload, rotated key", rotated, mediaPath(rotated.id)},
		{"send, deleted tenant's key", deleted, sendPath(deleted.id)},
		{"upload, deleted tenant's key", deleted, mediaPath(deleted.id)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if got := <-e.slowUpload(ctx, tt.tn.id, tt.tn.apiKey); got != http.StatusUnauthorized {
				t.Errorf("status %d, want 401 before the body ended", got)
			}
		})
	}
	msgs := wxrelayv1.NewMessageServiceClient(e.grpcClient())
	ctx, cancel := context.WithTimeout(withToken(deleted.apiKey), 5*time.Second)
	defer cancel()
	_, err := msgs.UploadMedia(ctx, &wxrelayv1.UploadMediaRequest{Id: deleted.id, Filename: "a.png", Content: make([]byte, 8<<20)})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC upload with a deleted tenant's key: %v, want Unauthenticated", err)
	}
}

// TestSlowUploadersHoldOnlyTheirOwnSlots: a tenant with uploads that never
// end holds its own share of the slots, over REST and gRPC alike, and
// another tenant uploads at once.
func TestSlowUploadersHoldOnlyTheirOwnSlots(t *testing.T) {
	e := newEnv(t)
	slow, other := e.wxTenant(), e.wxTenant()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range api.MaxUploadsPerCaller {
		e.slowUpload(ctx, slow.id, slow.apiKey)
	}
	time.Sleep(200 * time.Millisecond) // let them take their slots

	start := time.Now()
	r := e.upload(other.id, other.apiKey, "media", "a.png", smallPNG(t))
	if r.status != 200 {
		t.Fatalf("another tenant's upload beside the slow ones: %d %s", r.status, r.raw)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("another tenant's upload waited %s for a slot", took)
	}
	msgs := wxrelayv1.NewMessageServiceClient(e.grpcClient())
	_, err := msgs.UploadMedia(withToken(slow.apiKey), &wxrelayv1.UploadMediaRequest{Id: slow.id, Filename: "a.png", ContentType: "image/png", Content: smallPNG(t)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("gRPC upload of the tenant holding its slots: %v, want ResourceExhausted", err)
	}
	if _, err := msgs.UploadMedia(withToken(other.apiKey), &wxrelayv1.UploadMediaRequest{Id: other.id, Filename: "a.png", ContentType: "image/png", Content: smallPNG(t)}); err != nil {
		t.Errorf("gRPC upload of another tenant: %v", err)
	}
	if r := e.upload(slow.id, slow.apiKey, "media", "a.png", smallPNG(t)); r.status != http.StatusServiceUnavailable {
		t.Errorf("REST upload of the tenant holding its slots: %d, want 503 after waiting", r.status)
	}
}
