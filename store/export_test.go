package store

// SQLiteDeliveryStatements are the statements DeliveryStore prepares on
// SQLite, which bun's query hooks do not see: TestDeliveryStore_IndexUse
// checks their plans too.
var SQLiteDeliveryStatements = []string{sqliteClaimTenants, sqliteClaimTenantDue, sqliteClaimTenantDueOrdered, sqliteClaimLease, sqliteInsertAttempt, sqliteRecordOutcome}
