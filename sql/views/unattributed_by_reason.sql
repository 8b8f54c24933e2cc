-- unattributed_by_reason: bytes the meter saw but could not bill, per month and reason, with
-- how many interfaces and connections they touched (see README "How a byte is attributed").
SELECT substr(CAST(usage_hour AS VARCHAR), 1, 7) AS month,
       reason,
       CAST(COUNT(*) AS BIGINT) AS flow_rows,
       SUM(CAST(bytes AS DECIMAL(38, 0))) AS bytes,
       COUNT(DISTINCT interface_id) AS interfaces
FROM flows
WHERE status = 'unattributed'
GROUP BY 1, 2
