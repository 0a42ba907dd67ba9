DROP INDEX tenants_component;
ALTER TABLE tenants DROP COLUMN component_id;
