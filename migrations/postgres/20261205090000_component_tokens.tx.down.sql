DROP TABLE component_tokens;
