-- Reply windows (issue 5, protocol §7): WeChat accepts customer-service
-- sends to a user only for 48 h after the user's last message (5 sends) or
-- 1 min after the user entered the session (2 sends), and a new trigger
-- resets the quota. The relay keeps each user's window here, written at
-- ingest, in the transaction that stores the push, so that the check at
-- send time neither depends on events still being stored (retention prunes
-- them) nor needs an index on events. Times are Unix milliseconds, 0 when
-- no such trigger is known; see store/window.go.
CREATE TABLE reply_windows (
    tenant_id   text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    openid      text COLLATE "C" NOT NULL,
    -- The user's last message, and the sends reserved since it.
    msg_at      bigint  NOT NULL DEFAULT 0,
    msg_sends   integer NOT NULL DEFAULT 0,
    -- The user's last session entry (user_enter_tempsession), and the
    -- sends reserved since it.
    enter_at    bigint  NOT NULL DEFAULT 0,
    enter_sends integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, openid)
);

-- Since when the relay has stored a tenant's pushes: before that it cannot
-- know of a trigger, so it refuses nothing it could have missed.
CREATE TABLE reply_window_tenants (
    tenant_id text COLLATE "C" PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    since     bigint NOT NULL
);

-- A tenant may turn the check off (Tenant.ignore_reply_window).
ALTER TABLE tenants ADD COLUMN ignore_reply_window boolean NOT NULL DEFAULT false;
