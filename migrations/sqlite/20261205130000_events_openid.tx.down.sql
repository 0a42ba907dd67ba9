-- The events by openid.
DROP INDEX events_openid;
