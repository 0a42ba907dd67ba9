package tenant

import (
	"context"
	"time"
)

// AuditEntry is one change made through the API by an operator or an
// admin token: who, which method, on what, and how it ended. It holds no
// value that was sent, a secret least of all; Detail lists, for an
// update, the fields it changed.
type AuditEntry struct {
	Seq    int64 // set by the store: the listing's cursor
	Time   time.Time
	Actor  string // an operator's name, or AdminTokenActor
	Method string // the API method, e.g. UpdateTenant
	Target string // the id of what it changed: tn_..., cp_..., op_..., evt_...
	Detail string
	Code   string // the outcome: OK, or the gRPC code of the error
}

// AuditStore keeps the audit log; *store.AuditStore is one.
type AuditStore interface {
	AppendAudit(ctx context.Context, e AuditEntry) error
	// AuditEntries returns up to limit entries newest first, those before
	// seq before (0: from the newest).
	AuditEntries(ctx context.Context, before int64, limit int) ([]AuditEntry, error)
}
