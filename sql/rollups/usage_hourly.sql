-- usage_hourly: billable bytes per clock hour × client account × cluster × auth scheme ×
-- VPC connection × endpoint × AZ, for one month, with the observation-point rule applied
-- (view billable_flows). GB are derived at pricing time from the price book's bytes_per_gb.
--
-- Parameters, substituted by linkmeter before the query runs:
--   ${month_start}  first instant of the month, e.g. 2026-10-01T00:00:00Z
--   ${month_end}    first instant of the next month
SELECT
    usage_hour,
    client_account_id AS account_id,
    cluster_arn,
    cluster_name,
    region,
    auth_scheme,
    connection_arn,
    endpoint_id,
    az_id,
    SUM(CASE WHEN direction = 'to_cluster' THEN bytes ELSE 0 END) AS bytes_to_cluster,
    SUM(CASE WHEN direction = 'from_cluster' THEN bytes ELSE 0 END) AS bytes_from_cluster,
    SUM(bytes) AS bytes
FROM billable_flows
WHERE CAST(date AS VARCHAR) >= substr('${month_start}', 1, 10)
  AND CAST(date AS VARCHAR) < substr('${month_end}', 1, 10)
  AND usage_hour >= TIMESTAMP '${month_start}'
  AND usage_hour < TIMESTAMP '${month_end}'
GROUP BY usage_hour, client_account_id, cluster_arn, cluster_name, region, auth_scheme,
         connection_arn, endpoint_id, az_id
