-- The headers of the webhook answers.
ALTER TABLE attempts DROP COLUMN response_headers;
