DROP TABLE component_events;
