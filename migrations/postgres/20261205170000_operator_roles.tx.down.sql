-- Operators without roles: every one an admin again.
ALTER TABLE operators DROP COLUMN role;
