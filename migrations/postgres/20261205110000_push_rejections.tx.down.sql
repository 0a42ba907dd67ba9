-- Runs of refused pushes.
DROP TABLE push_rejections;
