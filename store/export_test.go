package store

import "time"

// SQLiteDeliveryStatements are the statements DeliveryStore prepares on
// SQLite, which bun's query hooks do not see: TestDeliveryStore_IndexUse
// checks their plans too.
var SQLiteDeliveryStatements = []string{sqliteClaimTenants, sqliteClaimTenantDue, sqliteClaimTenantDueOrdered, sqliteClaimTenantsDue, sqliteClaimLease, sqliteInsertAttempt, sqliteRecordOutcome}

// SetClaimPerTenantMax sets claimPerTenantMax, so that tests can run
// claims on SQLite in either form, and returns a function that restores it.
func SetClaimPerTenantMax(n int) (restore func()) {
	old := claimPerTenantMax
	claimPerTenantMax = n
	return func() { claimPerTenantMax = old }
}

// HoldWriteTurn takes db's SQLite write turn for d, as a slow commit would.
func HoldWriteTurn(db *DB, d time.Duration) {
	defer db.serialize()()
	time.Sleep(d)
}

// SetWalkTenants sets how many pending tenants a PostgreSQL claim walks
// from each of its two starts, and returns a function that restores it.
func SetWalkTenants(n int) (restore func()) {
	old := walkTenants
	walkTenants = n
	return func() { walkTenants = old }
}
