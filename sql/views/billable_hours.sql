-- billable_hours: the `flow_hours` sums that count toward metering; `billable_flows` at the
-- grain of an hour, endpoint ENI, direction and cluster, read from thousands of rows instead
-- of millions.
--
-- The same observation-point rule as billable_flows, over sums: for any (endpoint ENI, hour)
-- with endpoint-side rows (whatever their verdict), client-side sums do not count; otherwise
-- they do. Decided at query time, so late files change the answer instead of being double
-- counted. Summing this view gives the same bytes as summing billable_flows with the same
-- grouping (tests/e2e/preaggregates.rs runs both).
--
-- Portable SQL (DataFusion, DuckDB, Athena/Trino): a plain anti-join, no engine extensions.
WITH endpoint_seen AS (
    SELECT endpoint_eni, usage_hour
    FROM flow_hours
    WHERE observed_at = 'endpoint' AND endpoint_eni IS NOT NULL
    GROUP BY endpoint_eni, usage_hour
)
SELECT f.*
FROM flow_hours f
LEFT JOIN endpoint_seen s
       ON f.endpoint_eni = s.endpoint_eni AND f.usage_hour = s.usage_hour
WHERE f.status = 'attributed'
  AND (f.observed_at = 'endpoint' OR s.endpoint_eni IS NULL)
