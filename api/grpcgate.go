package api

import (
	"context"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// grpc-go reads a call's message when the handler asks for it, and only
// then opens the stream's flow-control window to the size the message
// announces, up to the server's one MaxRecvMsgSize (maxGRPCMessage, room
// for a 10 MiB upload). It has no limit per method. So what a caller can
// make the relay hold is bounded here instead:
//
//   - before its message is asked for, a stream holds at most its static
//     flow-control window (grpcStreamWindow);
//   - a message is read only in one of maxReadsInFlight read slots, at
//     most maxReadsPerCaller of them to one caller (a tenant's key, the
//     admins, or everyone without credentials together, who get
//     maxPublicReads), so the messages being read hold at most
//     maxReadsInFlight × maxGRPCMessage whoever calls;
//   - calls without credentials (health, reflection) end after
//     publicCallTimeout, so a slow sender holds a read slot no longer.
//
// A read slot is held only while the message arrives: microseconds for
// the few hundred bytes of an ordinary call, so the limits are never met
// by callers who send what they mean to.
const (
	grpcStreamWindow  = 64 << 10
	maxReadsInFlight  = 16
	maxReadsPerCaller = 4
	maxPublicReads    = 2
	publicCallTimeout = 10 * time.Second
)

// readGate hands out read slots.
type readGate struct {
	mu      sync.Mutex
	total   int
	byOwner map[string]int
}

func newReadGate() *readGate { return &readGate{byOwner: map[string]int{}} }

// publicOwner is the share of every caller without credentials.
const publicOwner = "\x00public"

// ownerOf names the caller of ctx's share of read slots: the principal
// credentialsTap found, or the public share.
func ownerOf(ctx context.Context) (owner string, limit int) {
	if p, ok := principalOf(ctx); ok {
		return slotOwner(p), maxReadsPerCaller
	}
	return publicOwner, maxPublicReads
}

// take takes a read slot for ctx's caller without waiting.
func (g *readGate) take(ctx context.Context) (release func(), err error) {
	owner, limit := ownerOf(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= maxReadsInFlight || g.byOwner[owner] >= limit {
		return nil, status.Error(codes.ResourceExhausted, "too many requests are being received from this caller or in all; retry in a moment")
	}
	g.total++
	g.byOwner[owner]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.total--
		if g.byOwner[owner]--; g.byOwner[owner] == 0 {
			delete(g.byOwner, owner)
		}
	}, nil
}

// unary returns desc with every method's message read in a read slot.
func (g *readGate) unary(desc *grpc.ServiceDesc) *grpc.ServiceDesc {
	gated := *desc
	gated.Methods = slices.Clone(desc.Methods)
	for i, m := range gated.Methods {
		handle := m.Handler
		gated.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			return handle(srv, ctx, func(v any) error {
				release, err := g.take(ctx)
				if err != nil {
					return err
				}
				defer release()
				return dec(v)
			}, interceptor)
		}
	}
	return &gated
}

// streams is a stream interceptor reading each message of a stream in a
// read slot.
func (g *readGate) streams(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &gatedStream{ServerStream: ss, gate: g})
}

type gatedStream struct {
	grpc.ServerStream
	gate *readGate
}

func (s *gatedStream) RecvMsg(m any) error {
	release, err := s.gate.take(s.Context())
	if err != nil {
		return err
	}
	defer release()
	return s.ServerStream.RecvMsg(m)
}
