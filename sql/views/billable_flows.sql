-- billable_flows: the attributed flow rows that count toward metering.
--
-- Observation-point rule (DESIGN §4 rule 3): a flow may be captured on the endpoint ENI, on
-- the client instance's ENI, or on both. For any (endpoint ENI, hour) that has endpoint-side
-- records, client-side records are not counted; otherwise they are. Resolved here, at query
-- time, so late files change the answer instead of being double counted.
--
-- Portable SQL (DataFusion, DuckDB, Athena/Trino): a plain anti-join, no engine extensions.
-- DataFusion 55 builds this join's hash table from every flow row of the query (it cannot
-- spill it), so a query over a large warehouse needs [engine] memory_limit raised; the month
-- close does not use this view (it reads flow_hours). Written as `endpoint_seen RIGHT JOIN
-- flows` the table would be small, but DataFusion 55 then lost whole connections' rows in
-- some runs (seen in tests/e2e/hostile.rs and preaggregates.rs), so the plain form stays.
WITH endpoint_seen AS (
    SELECT DISTINCT endpoint_eni, usage_hour
    FROM flows
    WHERE observed_at = 'endpoint' AND endpoint_eni IS NOT NULL
)
SELECT f.*
FROM flows f
LEFT JOIN endpoint_seen s
       ON f.endpoint_eni = s.endpoint_eni AND f.usage_hour = s.usage_hour
WHERE f.status = 'attributed'
  AND (f.observed_at = 'endpoint' OR s.endpoint_eni IS NULL)
