SELECT e.identity_id, count(*) AS alerts FROM AlertEntities e
JOIN Alerts a USING (alert_id) WHERE a.category = 'password_spray'
AND e.identity_id IS NOT NULL GROUP BY 1 HAVING alerts > 2
