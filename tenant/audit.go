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
	Code   string // the outcome: OK, the gRPC code of the error, or AuditStarted
}

// AuditStarted is the Code of an entry while its call runs: the entry is
// written before the change is made, so that no change goes unlogged,
// and its outcome after. An entry the relay stopped between the two
// keeps it: the change was attempted, its outcome is unknown.
const AuditStarted = "STARTED"

// AuditStore keeps the audit log; *store.AuditStore is one.
type AuditStore interface {
	// AppendAudit writes e durably and returns its Seq.
	AppendAudit(ctx context.Context, e AuditEntry) (int64, error)
	// FinishAudit sets entry seq's outcome, and its target and detail,
	// which the call's answer may complete (the id of what it created).
	FinishAudit(ctx context.Context, seq int64, target, detail, code string) error
	// AuditEntries returns up to limit entries newest first, those before
	// seq before (0: from the newest).
	AuditEntries(ctx context.Context, before int64, limit int) ([]AuditEntry, error)
}
