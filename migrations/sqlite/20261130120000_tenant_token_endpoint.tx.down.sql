ALTER TABLE tenants DROP COLUMN token_endpoint;
