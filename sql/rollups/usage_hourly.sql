-- usage_hourly: billable bytes per clock hour × client account × cluster × auth scheme ×
-- VPC connection × endpoint × AZ, for one month, with the observation-point rule applied
-- (see below). GB are derived at pricing time from the price book's bytes_per_gb.
--
-- Parameters, substituted by linkmeter before the query runs:
--   ${month_start}  first instant of the month, e.g. 2026-10-01T00:00:00Z
--   ${month_end}    first instant of the next month
-- It reads `flow_hours` (the flows rows summed per hour, ENI, side, direction and verdict as
-- they are ingested), not the rows themselves: the close's work grows with ENI-hours, not
-- with records. The observation-point rule is applied to those sums (the same rule as the
-- views billable_flows and billable_hours): per (hour, endpoint ENI) the endpoint-side sums
-- count when the endpoint side logged anything that hour, else the client-side sums.
-- tests/e2e/preaggregates.rs runs this query over `flows` too and gets the same rows.
-- Bytes are summed as DECIMAL(38,0): a sum of 64-bit integers wraps silently, and one hostile
-- input can hold enough records of 2^48 bytes to do it.
WITH per_side AS (
    SELECT
        usage_hour,
        endpoint_eni,
        observed_at,
        SUM(CASE WHEN status = 'attributed' AND direction = 'to_cluster' THEN CAST(bytes AS DECIMAL(38, 0)) ELSE 0 END) AS bytes_to_cluster,
        SUM(CASE WHEN status = 'attributed' AND direction = 'from_cluster' THEN CAST(bytes AS DECIMAL(38, 0)) ELSE 0 END) AS bytes_from_cluster,
        SUM(CASE WHEN status = 'attributed' THEN flow_rows ELSE 0 END) AS attributed_rows
    FROM flow_hours
    WHERE endpoint_eni IS NOT NULL
      AND CAST(date AS VARCHAR) >= substr('${month_start}', 1, 10)
      AND CAST(date AS VARCHAR) < substr('${month_end}', 1, 10)
      AND usage_hour >= TIMESTAMP '${month_start}'
      AND usage_hour < TIMESTAMP '${month_end}'
    GROUP BY usage_hour, endpoint_eni, observed_at
),
per_eni AS (
    SELECT
        usage_hour,
        endpoint_eni,
        MAX(CASE WHEN observed_at = 'endpoint' THEN 1 ELSE 0 END) AS endpoint_seen,
        SUM(CASE WHEN observed_at = 'endpoint' THEN bytes_to_cluster ELSE 0 END) AS e_to,
        SUM(CASE WHEN observed_at = 'endpoint' THEN bytes_from_cluster ELSE 0 END) AS e_from,
        SUM(CASE WHEN observed_at = 'endpoint' THEN attributed_rows ELSE 0 END) AS e_rows,
        SUM(CASE WHEN observed_at = 'client' THEN bytes_to_cluster ELSE 0 END) AS c_to,
        SUM(CASE WHEN observed_at = 'client' THEN bytes_from_cluster ELSE 0 END) AS c_from,
        SUM(CASE WHEN observed_at = 'client' THEN attributed_rows ELSE 0 END) AS c_rows
    FROM per_side
    GROUP BY usage_hour, endpoint_eni
),
billable AS (
    SELECT
        usage_hour,
        endpoint_eni,
        CASE WHEN endpoint_seen = 1 THEN e_to ELSE c_to END AS bytes_to_cluster,
        CASE WHEN endpoint_seen = 1 THEN e_from ELSE c_from END AS bytes_from_cluster
    FROM per_eni
    WHERE (endpoint_seen = 1 AND e_rows > 0) OR (endpoint_seen = 0 AND c_rows > 0)
)
SELECT
    b.usage_hour,
    c.client_account_id AS account_id,
    c.cluster_arn,
    c.cluster_name,
    c.region,
    c.auth_scheme,
    c.connection_arn,
    c.endpoint_id,
    e.az_id,
    b.bytes_to_cluster,
    b.bytes_from_cluster,
    b.bytes_to_cluster + b.bytes_from_cluster AS bytes
FROM billable b
JOIN endpoint_enis e ON e.endpoint_eni = b.endpoint_eni
JOIN connections c ON c.connection_arn = e.connection_arn
