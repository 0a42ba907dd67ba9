-- A user's events, newest first, whatever the tenant: the operator's
-- search by openid (an openid is one mini program's, so it finds the
-- tenant too), and a tenant's events filtered by user.
CREATE INDEX events_openid ON events (openid, seq);
