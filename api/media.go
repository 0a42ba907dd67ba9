package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
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
)

// MaxUploadBodyBytes caps the body of a media upload: WeChat's image limit
// (wechat.MaxUploadBytes) plus room for the multipart framing.
const MaxUploadBodyBytes = wechat.MaxUploadBytes + 64<<10

// MaxConcurrentUploads bounds the REST uploads read at once. An upload is
// held in memory more than once (the part read, the request cloned for the
// in-process call, the multipart body sent to WeChat), some 30 MiB live
// for a 10 MiB file, so this keeps uploads to about 120 MiB live together
// whatever the number of callers; the runtime's soft memory limit
// (cmd/wxrelay) keeps their garbage from piling up past it. Uploads are
// rare (an image is uploaded once and its media_id reused), so waiting a
// moment costs little.
const MaxConcurrentUploads = 4

// uploadWait is how long an upload waits for a slot before it is answered
// 503 with Retry-After.
const uploadWait = 5 * time.Second

// uploadSlot takes an upload slot, waiting up to uploadWait, and returns
// its release.
func (s *Server) uploadSlot(ctx context.Context) (release func(), ok bool) {
	t := time.NewTimer(uploadWait)
	defer t.Stop()
	select {
	case s.uploads <- struct{}{}:
		return func() { <-s.uploads }, true
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, false
}

// restJSON renders REST answers as the gateway does.
var restJSON = protojson.MarshalOptions{UseProtoNames: true}

var (
	uploadTooLarge = "media: is over the limit of 10 MiB (10485760 bytes)"
	uploadNoPart   = `media: is required: send the file as the multipart/form-data part "media"`
	uploadsBusy    = "too many media uploads in progress; retry in a moment"
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
		release, ok := s.uploadSlot(r.Context())
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
