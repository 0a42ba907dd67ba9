ALTER TABLE tenants DROP COLUMN ignore_reply_window;
DROP TABLE reply_window_tenants;
DROP TABLE reply_windows;
