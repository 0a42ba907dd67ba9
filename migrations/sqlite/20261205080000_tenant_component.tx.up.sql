-- A tenant of a third-party platform (component) names it; its row then
-- holds none of the mini program's secrets. A component cannot be deleted
-- while tenants name it (the API says which).
ALTER TABLE tenants ADD COLUMN component_id TEXT REFERENCES components (id);

CREATE INDEX tenants_component ON tenants (component_id) WHERE component_id IS NOT NULL;
