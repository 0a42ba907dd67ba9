DROP INDEX attempts_tenant_time;
