-- billable_flows: the attributed flow rows that count toward metering.
--
-- Observation-point rule (DESIGN §4 rule 3): a flow may be captured on the endpoint ENI, on
-- the client instance's ENI, or on both. For any (endpoint ENI, hour) that has endpoint-side
-- records, client-side records are not counted; otherwise they are. Resolved here, at query
-- time, so late files change the answer instead of being double counted.
--
-- Portable SQL (DataFusion, DuckDB, Athena/Trino): a plain anti-join, no engine extensions.
-- The small side (ENI-hours) is written first: DataFusion builds its hash table from the left
-- input, and a LEFT JOIN from `flows` held every flow row in memory (1.9 GB at 12 M rows).
WITH endpoint_seen AS (
    SELECT endpoint_eni, usage_hour
    FROM flows
    WHERE observed_at = 'endpoint' AND endpoint_eni IS NOT NULL
    GROUP BY endpoint_eni, usage_hour
)
SELECT f.*
FROM endpoint_seen s
RIGHT JOIN flows f
       ON f.endpoint_eni = s.endpoint_eni AND f.usage_hour = s.usage_hour
WHERE f.status = 'attributed'
  AND (f.observed_at = 'endpoint' OR s.endpoint_eni IS NULL)
