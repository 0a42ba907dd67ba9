package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// MaxUploadBodyBytes caps the body of a media upload: WeChat's image limit
// (wechat.MaxUploadBytes) plus room for the multipart framing.
const MaxUploadBodyBytes = wechat.MaxUploadBytes + 64<<10

// MaxConcurrentUploads bounds the uploads read at once, over REST and
// gRPC together. An upload is held in memory more than once (the part
// read, the request cloned for the in-process call, the multipart body
// sent to WeChat), some 30 MiB live for a 10 MiB file, so this keeps
// uploads to about 240 MiB live together whatever the number of callers;
// the runtime's soft memory limit (cmd/wxrelay) keeps their garbage from
// piling up past it. MaxUploadsPerCaller is each caller's share (a
// tenant's key, or admins together), so that a few slow uploaders hold
// only their own slots: it takes MaxConcurrentUploads/MaxUploadsPerCaller
// tenants at once to hold them all. Uploads are rare (an image is uploaded
// once and its media_id reused), so waiting a moment costs little.
const (
	MaxConcurrentUploads = 8
	MaxUploadsPerCaller  = 2
)

// uploadWait is how long a REST upload waits for a slot before it is
// answered 503 with Retry-After. A gRPC upload does not wait.
const uploadWait = 5 * time.Second

// uploadSlots hands out upload slots: at most MaxConcurrentUploads in
// all, MaxUploadsPerCaller to one caller.
type uploadSlots struct {
	mu      sync.Mutex
	total   int
	byOwner map[string]int
	freed   chan struct{} // closed, and replaced, when a slot is given back
}

func newUploadSlots() *uploadSlots {
	return &uploadSlots{byOwner: map[string]int{}, freed: make(chan struct{})}
}

// slotOwner names p's share of the slots.
func slotOwner(p tenant.Principal) string {
	if p.Admin {
		return "admin"
	}
	return string(p.Tenant)
}

// take takes a slot for owner, waiting up to wait (0: not at all), and
// returns its release.
func (u *uploadSlots) take(ctx context.Context, owner string, wait time.Duration) (release func(), ok bool) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		u.mu.Lock()
		if u.total < MaxConcurrentUploads && u.byOwner[owner] < MaxUploadsPerCaller {
			u.total++
			u.byOwner[owner]++
			u.mu.Unlock()
			return sync.OnceFunc(func() { u.give(owner) }), true
		}
		freed := u.freed
		u.mu.Unlock()
		if wait <= 0 {
			return nil, false
		}
		select {
		case <-freed:
		case <-timeout:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
}

func (u *uploadSlots) give(owner string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.total--
	if u.byOwner[owner]--; u.byOwner[owner] == 0 {
		delete(u.byOwner, owner)
	}
	close(u.freed)
	u.freed = make(chan struct{})
}

// restJSON renders REST answers as the gateway does.
var restJSON = protojson.MarshalOptions{UseProtoNames: true}

var (
	uploadTooLarge = "media: is over the limit of 10 MiB (10485760 bytes)"
	uploadNoPart   = `media: is required: send the file as the multipart/form-data part "media"`
	uploadsBusy    = "too many media uploads in progress for this caller or in all; retry in a moment"
)

// uploadHandler serves POST /v1/tenants/{id}/media (contract §3): a
// multipart/form-data body with the image in the part "media". It parses
// the form, which grpc-gateway cannot, and calls MessageService.UploadMedia
// over the gateway's in-process channel with the caller's Authorization
// header as metadata, so the call gets the same auth, error mapping,
// logging and metrics as every other; answers and errors are written as
// the gateway writes them.
func (s *Server) uploadHandler() http.Handler {
	client := wxrelayv1.NewMessageServiceClient(s.inproc)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxUploadBodyBytes {
			writeStatusProto(w, http.StatusRequestEntityTooLarge, status.New(codes.InvalidArgument, uploadTooLarge))
			return
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
			writeStatusProto(w, http.StatusBadRequest, status.New(codes.InvalidArgument, `the body must be multipart/form-data with the file in the part "media"`))
			return
		}
		p, _ := principalOf(r.Context()) // requireCredentials put it there
		release, ok := s.uploads.take(r.Context(), slotOwner(p), uploadWait)
		if !ok {
			w.Header().Set("Retry-After", "1")
			writeStatusProto(w, http.StatusServiceUnavailable, status.New(codes.Unavailable, uploadsBusy))
			return
		}
		defer release()
		r.Body = http.MaxBytesReader(w, r.Body, MaxUploadBodyBytes)
		req, httpStatus, st := readUpload(r)
		if st != nil {
			writeStatusProto(w, httpStatus, st)
			return
		}
		req.Id = r.PathValue("id")

		ctx := r.Context()
		if auth := r.Header.Get("Authorization"); auth != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", auth)
		}
		resp, err := client.UploadMedia(ctx, req)
		if err != nil {
			st := status.Convert(err)
			writeStatusProto(w, runtime.HTTPStatusFromCode(st.Code()), st)
			return
		}
		writeProto(w, http.StatusOK, resp)
	})
}

// readUpload reads the "media" part of r's multipart body. On failure it
// returns the HTTP status and the status to answer with.
func readUpload(r *http.Request) (*wxrelayv1.UploadMediaRequest, int, *status.Status) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, http.StatusBadRequest, status.New(codes.InvalidArgument, "could not read the multipart body: "+err.Error())
	}
	for {
		part, err := mr.NextPart()
		switch {
		case errors.Is(err, io.EOF):
			return nil, http.StatusBadRequest, status.New(codes.InvalidArgument, uploadNoPart)
		case err != nil:
			return bodyErrStatus(err)
		}
		if part.FormName() != message.ImageField {
			continue
		}
		// Sized from the request's length, so the file is read into one
		// allocation rather than grown into by doubling (twice the bytes,
		// half of it garbage).
		var buf bytes.Buffer
		buf.Grow(int(min(max(r.ContentLength, 0), wechat.MaxUploadBytes+1)))
		_, err = buf.ReadFrom(io.LimitReader(part, wechat.MaxUploadBytes+1))
		content := buf.Bytes()
		switch {
		case err != nil:
			return bodyErrStatus(err)
		case len(content) > wechat.MaxUploadBytes:
			return nil, http.StatusRequestEntityTooLarge, status.New(codes.InvalidArgument, uploadTooLarge)
		}
		return &wxrelayv1.UploadMediaRequest{
			Filename:    part.FileName(),
			ContentType: strings.TrimSpace(part.Header.Get("Content-Type")),
			Content:     content,
		}, 0, nil
	}
}

func bodyErrStatus(err error) (*wxrelayv1.UploadMediaRequest, int, *status.Status) {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, http.StatusRequestEntityTooLarge, status.New(codes.InvalidArgument, uploadTooLarge)
	}
	return nil, http.StatusBadRequest, status.New(codes.InvalidArgument, "could not read the multipart body: "+err.Error())
}

// writeStatusProto writes st as the gateway's error body (google.rpc.Status
// with proto field names).
func writeStatusProto(w http.ResponseWriter, httpStatus int, st *status.Status) {
	writeProto(w, httpStatus, st.Proto())
}

func writeProto(w http.ResponseWriter, httpStatus int, m proto.Message) {
	b, err := restJSON.Marshal(m)
	if err != nil {
		httpStatus = http.StatusInternalServerError
		b = []byte(`{"code":13,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	w.Write(b)
}
