DROP TABLE health_alerts;
DROP TABLE health_reasons;
