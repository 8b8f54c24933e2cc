-- account_usage: billable GiB per month, client account (with its name and cost center),
-- cluster, auth scheme and direction; the question finance asks first.
SELECT substr(CAST(f.usage_hour AS VARCHAR), 1, 7) AS month,
       f.client_account_id AS account_id,
       a.account_name,
       a.cost_center,
       f.cluster_name,
       f.auth_scheme,
       f.direction,
       SUM(CAST(f.bytes AS DECIMAL(38, 0))) AS bytes,
       CAST(SUM(CAST(f.bytes AS DECIMAL(38, 0))) AS DOUBLE) / 1073741824.0 AS gib
FROM billable_hours f
LEFT JOIN accounts a ON a.account_id = f.client_account_id
GROUP BY 1, 2, 3, 4, 5, 6, 7
