-- The headers of the webhook's answer to an attempt, as "Name: value"
-- lines, the first 2 KiB: beside its status and the start of its body, what
-- an operator reads to tell a proxy's error page from the tenant's own.
ALTER TABLE attempts ADD COLUMN response_headers TEXT NOT NULL DEFAULT '';
