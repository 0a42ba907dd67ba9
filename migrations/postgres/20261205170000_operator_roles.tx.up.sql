-- Operators have a role: admin (everything, as before) or viewer (reads
-- only). Those added before roles keep an admin's rights.
ALTER TABLE operators ADD COLUMN role TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'viewer'));
