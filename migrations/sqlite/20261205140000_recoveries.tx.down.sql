-- Bulk recoveries.
DROP TABLE recoveries;
