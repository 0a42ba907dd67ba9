package wxsim

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// mediaLifetime is how long a media_id works after upload (protocol §7).
const mediaLifetime = 72 * time.Hour

// mediaIDBytes of randomness make a 64-character media id.
const mediaIDBytes = 48

// media is an uploaded image. A media id is good only for the app that
// uploaded it, as on WeChat, where media belong to an account.
type media struct {
	id          string
	appid       string
	contentType string // sniffed from the bytes, one imageExt knows
	data        []byte
	created     time.Time
}

func (m *media) expired(now time.Time) bool {
	return !now.Before(m.created.Add(mediaLifetime))
}

// writeTo answers media/get the way SDKs expect (protocol §7): the raw
// bytes, labelled with the image's own Content-Type so they are told from a
// JSON error, and the file name in "Content-disposition".
func (m *media) writeTo(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", m.contentType)
	h.Set("Content-Length", strconv.Itoa(len(m.data)))
	// Assigned directly to keep WeChat's spelling of the name; HTTP header
	// names are case-insensitive, and Go clients canonicalize it anyway.
	h["Content-disposition"] = []string{`attachment; filename="` + m.id + "." + imageExt(m.contentType) + `"`}
	w.WriteHeader(http.StatusOK)
	w.Write(m.data)
}

// imageExt returns the file extension for an image type wxsim accepts, as
// named by http.DetectContentType, or "" for any other type.
func imageExt(contentType string) string {
	switch contentType {
	case "image/jpeg":
		return "jpg"
	case "image/png":
		return "png"
	case "image/gif":
		return "gif"
	case "image/bmp":
		return "bmp"
	}
	return ""
}

// findMedia returns appid's live media with the given id. s.mu must be held.
func (s *Server) findMedia(appid, id string, now time.Time) (*media, bool) {
	m, ok := s.media[id]
	if !ok || m.appid != appid || m.expired(now) {
		return nil, false
	}
	return m, true
}

// uploadResult is media/upload's answer. The official example carries
// errcode 0 and errmsg "ok" beside the documented fields (protocol §7), so
// wxsim sends them too: clients must take errcode 0 as success.
type uploadResult struct {
	result
	Type      string `json:"type"`
	MediaID   string `json:"media_id"`
	CreatedAt int64  `json:"created_at"`
}

// upload serves POST /cgi-bin/media/upload?type=image. The file is the
// multipart part named "media", with a filename and a Content-Type
// (protocol §7); only images are accepted, judged by their bytes, not by
// the label the client put on them.
func (s *Server) upload(r *http.Request, rec *Call) (any, error) {
	appid, err := s.authorize(r, rec)
	if err != nil {
		return nil, err
	}
	if typ := r.URL.Query().Get("type"); typ != "image" {
		return nil, failf(codeInvalidMediaType, "type %q: mini programs upload images only", typ)
	}
	data, err := s.readMediaPart(r, rec)
	if err != nil {
		return nil, err
	}
	contentType := http.DetectContentType(data)
	if imageExt(contentType) == "" {
		return nil, failf(codeInvalidMediaType, "the bytes are %s, not a JPEG, PNG, GIF or BMP image", contentType)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, m := range s.media {
		if m.expired(now) {
			delete(s.media, id)
		}
	}
	m := &media{id: randomID(mediaIDBytes), appid: appid, contentType: contentType, data: data, created: now}
	s.media[m.id] = m
	rec.Upload.MediaID = m.id
	return uploadResult{result: okResult(), Type: "image", MediaID: m.id, CreatedAt: now.Unix()}, nil
}

// readMediaPart finds the "media" part of a multipart/form-data body and
// reads it, describing it in rec.Upload.
func (s *Server) readMediaPart(r *http.Request, rec *Call) ([]byte, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, failf(codeMediaMissing, "body is not multipart/form-data: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, fail(codeMediaMissing, `no part named "media"`)
		}
		if err != nil {
			return nil, s.bodyError(err)
		}
		if part.FormName() != "media" {
			continue
		}
		up := &Upload{Filename: part.FileName(), ContentType: part.Header.Get("Content-Type")}
		rec.Upload = up
		switch {
		case up.Filename == "":
			return nil, fail(codeMediaMissing, `the "media" part has no filename, so it is not a file`)
		case up.ContentType == "":
			return nil, fail(codeInvalidFileType, `the "media" part has no Content-Type`)
		}
		data, err := io.ReadAll(io.LimitReader(part, s.maxUpload+1))
		up.Size = int64(len(data))
		switch {
		case err != nil:
			return nil, s.bodyError(err)
		case int64(len(data)) > s.maxUpload:
			return nil, failf(codeInvalidImageSize, "image over %d bytes", s.maxUpload)
		case len(data) == 0:
			return nil, fail(codeEmptyMedia, "the image is empty")
		}
		return data, nil
	}
}

// bodyError classifies a failure reading an upload body.
func (s *Server) bodyError(err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return failf(codeInvalidImageSize, "body over the %d-byte cap", s.maxUpload+maxJSONBody)
	}
	return failf(codeMediaMissing, "reading multipart body: %v", err)
}

// getMedia serves GET /cgi-bin/media/get: the raw image, or JSON 40007 for
// a media id that is unknown, expired or another app's.
func (s *Server) getMedia(r *http.Request, rec *Call) (any, error) {
	appid, err := s.authorize(r, rec)
	if err != nil {
		return nil, err
	}
	id := r.URL.Query().Get("media_id")
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.findMedia(appid, id, s.now())
	if !ok {
		return nil, failf(codeInvalidMediaID, "media_id %q is not live media of %s", id, appid)
	}
	return m, nil
}
