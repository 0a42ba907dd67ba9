-- Which WeChat endpoint fetches the tenant's access tokens (protocol §6):
-- stable_token unless the tenant opts into the classic one.
ALTER TABLE tenants ADD COLUMN token_endpoint text NOT NULL DEFAULT 'stable' CHECK (token_endpoint IN ('stable', 'classic'));
