-- endpoint_usage: per month and VPC endpoint, who owns it (the account billed for its hours
-- and GB), which connection, cluster and scheme it serves, and the bytes it carried.
SELECT substr(CAST(f.usage_hour AS VARCHAR), 1, 7) AS month,
       c.endpoint_id,
       c.client_account_id AS billed_account_id,
       a.account_name AS billed_account_name,
       c.connection_arn,
       c.cluster_name,
       c.auth_scheme,
       SUM(CAST(f.bytes AS DECIMAL(38, 0))) AS bytes
FROM billable_hours f
JOIN connections c ON c.connection_arn = f.connection_arn
LEFT JOIN accounts a ON a.account_id = c.client_account_id
GROUP BY 1, 2, 3, 4, 5, 6, 7
