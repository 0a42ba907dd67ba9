package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// SessionStore keeps the operator console's sessions (console_sessions),
// each the sealed admin token it was opened with.
type SessionStore struct{ db *DB }

// NewSessionStore returns a SessionStore on db.
func NewSessionStore(db *DB) *SessionStore { return &SessionStore{db: db} }

type sessionRow struct {
	bun.BaseModel `bun:"table:console_sessions"`

	IDHash      []byte    `bun:"id_sha256,pk"`
	SealedToken []byte    `bun:"sealed_token"`
	ExpiresAt   time.Time `bun:"expires_at"`
}

const colSessionToken = "console_sessions.sealed_token"

// CreateSession stores a session whose id hashes to idHash, holding token
// until expires.
func (s *SessionStore) CreateSession(ctx context.Context, idHash []byte, token string, expires time.Time) error {
	if s.db.sealer == nil {
		return errNoSealKey
	}
	defer s.db.serialize()()
	row := &sessionRow{IDHash: idHash, SealedToken: s.db.sealer.seal([]byte(token), colSessionToken, hex.EncodeToString(idHash)), ExpiresAt: expires.UTC()}
	if _, err := s.db.bun.NewInsert().Model(row).Exec(ctx); err != nil {
		return fmt.Errorf("create console session: %w", err)
	}
	return nil
}

// FindSession returns the token of the session whose id hashes to idHash,
// and when it expires; ok is false for none, or one expired at now.
func (s *SessionStore) FindSession(ctx context.Context, idHash []byte, now time.Time) (token string, expires time.Time, ok bool, err error) {
	if s.db.sealer == nil {
		return "", time.Time{}, false, errNoSealKey
	}
	var row sessionRow
	err = s.db.bun.NewSelect().Model(&row).Where("id_sha256 = ?", idHash).Where("expires_at > ?", now.UTC()).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, false, nil
	} else if err != nil {
		return "", time.Time{}, false, fmt.Errorf("find console session: %w", err)
	}
	plain, err := s.db.sealer.open(row.SealedToken, colSessionToken, hex.EncodeToString(idHash))
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("find console session: %w", err)
	}
	return string(plain), row.ExpiresAt.UTC(), true, nil
}

// DeleteSession ends the session whose id hashes to idHash.
func (s *SessionStore) DeleteSession(ctx context.Context, idHash []byte) error {
	defer s.db.serialize()()
	if _, err := s.db.bun.NewDelete().Model((*sessionRow)(nil)).Where("id_sha256 = ?", idHash).Exec(ctx); err != nil {
		return fmt.Errorf("end console session: %w", err)
	}
	return nil
}

// PruneSessions deletes the sessions expired at now.
func (s *SessionStore) PruneSessions(ctx context.Context, now time.Time) (int, error) {
	defer s.db.serialize()()
	res, err := s.db.bun.NewDelete().Model((*sessionRow)(nil)).Where("expires_at <= ?", now.UTC()).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune console sessions: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
