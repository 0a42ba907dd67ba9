DROP TABLE tenant_deletions;
