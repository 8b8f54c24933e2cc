-- The linkmeter warehouse at s3://example-bucket/linkmeter: 19 Delta Lake tables and 7 views, for Trino's Delta Lake connector.
-- Written by `linkmeter ddl --dialect trino`; rerun it after upgrading linkmeter (new columns
-- appear by themselves: they are read from the Delta log).
-- Each table reads its latest Delta version. While `linkmeter ingest` runs (or after one
-- was killed, until the next run), flows, flow_hours, coverage, broker_metrics, broker_hours
-- and quarantine may hold rows of a segment not yet in `inputs`; `linkmeter sql` leaves
-- those out. Query between runs for numbers that match the invoice.
-- register_table needs delta.register-table-procedure.enabled=true in the catalog.

CREATE SCHEMA IF NOT EXISTS delta.linkmeter;

-- flows: relevant flow records split by clock hour, attributed or with a reason
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'flows', table_location => 's3://example-bucket/linkmeter/flows');

-- flow_hours: flows summed per hour, endpoint ENI, side, direction, verdict and cluster, per segment and day
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'flow_hours', table_location => 's3://example-bucket/linkmeter/flow_hours');

-- coverage: NODATA / SKIPDATA windows per ENI
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'coverage', table_location => 's3://example-bucket/linkmeter/coverage');

-- broker_metrics: MSK broker-metric datapoints with raw statistics and derived bytes
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'broker_metrics', table_location => 's3://example-bucket/linkmeter/broker_metrics');

-- broker_hours: byte datapoints of broker_metrics summed per file, hour, broker, topic, metric and source, per segment and day
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'broker_hours', table_location => 's3://example-bucket/linkmeter/broker_hours');

-- quarantine: input that could not be decoded, with file, line and reason
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'quarantine', table_location => 's3://example-bucket/linkmeter/quarantine');

-- runs: one row per run with its conservation balance
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'runs', table_location => 's3://example-bucket/linkmeter/runs');

-- inputs: one row per ingested input: the checkpoint for idempotent reruns
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'inputs', table_location => 's3://example-bucket/linkmeter/inputs');

-- accounts: inventory: accounts, names, cost centers
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'accounts', table_location => 's3://example-bucket/linkmeter/accounts');

-- clusters: inventory: MSK clusters
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'clusters', table_location => 's3://example-bucket/linkmeter/clusters');

-- cluster_connectivity: inventory: auth schemes turned on per cluster
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'cluster_connectivity', table_location => 's3://example-bucket/linkmeter/cluster_connectivity');

-- connections: inventory: managed VPC connections
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'connections', table_location => 's3://example-bucket/linkmeter/connections');

-- endpoint_enis: inventory: endpoint ENIs per AZ
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'endpoint_enis', table_location => 's3://example-bucket/linkmeter/endpoint_enis');

-- usage_hourly: rollup: billable bytes per hour, account, cluster, auth scheme, connection, endpoint, AZ
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'usage_hourly', table_location => 's3://example-bucket/linkmeter/usage_hourly');

-- endpoint_hours: rollup: every hour an endpoint ENI (endpoint × AZ) was provisioned
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'endpoint_hours', table_location => 's3://example-bucket/linkmeter/endpoint_hours');

-- connectivity_hours: rollup: every hour a cluster had connectivity on for an auth scheme
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'connectivity_hours', table_location => 's3://example-bucket/linkmeter/connectivity_hours');

-- invoice_lines: invoice lines per month and view, money as Decimal128
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'invoice_lines', table_location => 's3://example-bucket/linkmeter/invoice_lines');

-- bill_lines: the AWS bill (CUR 2.0 or FOCUS export): PrivateLink endpoint and MSK private-connectivity lines
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'bill_lines', table_location => 's3://example-bucket/linkmeter/bill_lines');

-- closed_months: months closed for finance: who, when, the table versions and report checksums they were closed on
CALL delta.system.register_table(schema_name => 'linkmeter', table_name => 'closed_months', table_location => 's3://example-bucket/linkmeter/closed_months');

-- billable_flows: attributed flow rows that count, observation-point rule applied
CREATE OR REPLACE VIEW delta.linkmeter.billable_flows AS
WITH endpoint_seen AS (
    SELECT DISTINCT endpoint_eni, usage_hour
    FROM delta.linkmeter.flows
    WHERE observed_at = 'endpoint' AND endpoint_eni IS NOT NULL
)
SELECT f.*
FROM delta.linkmeter.flows f
LEFT JOIN endpoint_seen s
       ON f.endpoint_eni = s.endpoint_eni AND f.usage_hour = s.usage_hour
WHERE f.status = 'attributed'
  AND (f.observed_at = 'endpoint' OR s.endpoint_eni IS NULL);

-- billable_hours: billable_flows summed per hour, endpoint ENI, direction and cluster (from flow_hours)
CREATE OR REPLACE VIEW delta.linkmeter.billable_hours AS
WITH endpoint_seen AS (
    SELECT endpoint_eni, usage_hour
    FROM delta.linkmeter.flow_hours
    WHERE observed_at = 'endpoint' AND endpoint_eni IS NOT NULL
    GROUP BY endpoint_eni, usage_hour
)
SELECT f.*
FROM delta.linkmeter.flow_hours f
LEFT JOIN endpoint_seen s
       ON f.endpoint_eni = s.endpoint_eni AND f.usage_hour = s.usage_hour
WHERE f.status = 'attributed'
  AND (f.observed_at = 'endpoint' OR s.endpoint_eni IS NULL);

-- reconciliation: flow-log bytes against broker metrics per cluster-hour and direction
CREATE OR REPLACE VIEW delta.linkmeter.reconciliation AS
WITH hours AS (
    SELECT *
    FROM delta.linkmeter.broker_hours
    WHERE CAST(date AS VARCHAR) >= substr(CAST(TIMESTAMP '1970-01-01 00:00:00 UTC' - INTERVAL '1' HOUR AS VARCHAR), 1, 10)
      AND CAST(date AS VARCHAR) < substr('2200-01-01T00:00:00Z', 1, 10)
      AND usage_hour >= TIMESTAMP '1970-01-01 00:00:00 UTC' - INTERVAL '1' HOUR
      AND usage_hour < TIMESTAMP '2200-01-01 00:00:00 UTC'
),
chained AS (
    SELECT h.*,
           MAX(last_at) OVER (
               PARTITION BY cluster_arn, broker_id, topic, metric, source ORDER BY first_at, last_at
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS seen_until,
           LAG(last_at) OVER (
               PARTITION BY cluster_arn, broker_id, topic, metric, source ORDER BY first_at, last_at) AS prev_at,
           LAG(last_counter) OVER (
               PARTITION BY cluster_arn, broker_id, topic, metric, source ORDER BY first_at, last_at) AS prev_counter
    FROM hours h
),
overlapping AS (
    SELECT c.*, CASE WHEN first_at <= seen_until THEN 1 ELSE 0 END AS overlapped
    FROM chained c
),
judged AS (
    SELECT o.*,
           CASE WHEN overlapped = 1 THEN 1
                WHEN source = 'prometheus' AND LAG(overlapped) OVER (
                    PARTITION BY cluster_arn, broker_id, topic, metric, source ORDER BY first_at, last_at) = 1 THEN 1
                ELSE 0 END AS doubtful,
           CASE WHEN source <> 'prometheus' OR prev_at IS NULL THEN NULL
                WHEN first_at - prev_at > INTERVAL '15' MINUTE THEN NULL
                WHEN first_counter >= prev_counter THEN CAST(round(first_counter - prev_counter) AS BIGINT)
                ELSE CAST(round(first_counter) AS BIGINT) END AS joining_step
    FROM overlapping o
),
summed AS (
    SELECT usage_hour, cluster_arn, cluster_name, broker_id, topic, metric, source,
           MAX(doubtful) AS doubtful,
           SUM(steps + CASE WHEN joining_step IS NULL THEN 0 ELSE 1 END) AS steps,
           SUM(bytes + COALESCE(joining_step, 0)) AS bytes
    FROM judged
    WHERE usage_hour >= TIMESTAMP '1970-01-01 00:00:00 UTC'
    GROUP BY usage_hour, cluster_arn, cluster_name, broker_id, topic, metric, source
),
keyed AS (
    SELECT s.*,
           MAX(doubtful) OVER (PARTITION BY usage_hour, cluster_arn, broker_id, topic, metric, source) AS key_doubtful
    FROM summed s
),
doubtful AS (
    SELECT DISTINCT usage_hour, cluster_arn, broker_id, topic, metric, source FROM keyed WHERE key_doubtful = 1
),
cloudwatch AS (
    SELECT DISTINCT m.period_start, m.usage_hour, m.cluster_arn, m.cluster_name, m.broker_id, m.topic, m.metric, m.bytes
    FROM doubtful d
    JOIN delta.linkmeter.broker_metrics m
      ON m.usage_hour = d.usage_hour AND m.cluster_arn = d.cluster_arn AND m.broker_id = d.broker_id
     AND COALESCE(m.topic, '') = COALESCE(d.topic, '') AND m.metric = d.metric AND d.source = 'cloudwatch'
    WHERE m.counter IS NULL AND m.bytes IS NOT NULL
      AND CAST(m.date AS VARCHAR) >= substr('1970-01-01T00:00:00Z', 1, 10)
      AND CAST(m.date AS VARCHAR) < substr('2200-01-01T00:00:00Z', 1, 10)
),
counters AS (
    SELECT DISTINCT m.period_start, m.usage_hour, m.cluster_arn, m.cluster_name, m.broker_id, m.topic, m.metric, m.counter,
           d.usage_hour AS for_hour
    FROM doubtful d
    JOIN delta.linkmeter.broker_metrics m
      ON m.cluster_arn = d.cluster_arn AND m.broker_id = d.broker_id
     AND COALESCE(m.topic, '') = COALESCE(d.topic, '') AND m.metric = d.metric AND d.source = 'prometheus'
     AND m.period_start >= d.usage_hour - INTERVAL '1' HOUR AND m.usage_hour <= d.usage_hour
    WHERE m.counter IS NOT NULL
      AND CAST(m.date AS VARCHAR) >= substr(CAST(TIMESTAMP '1970-01-01 00:00:00 UTC' - INTERVAL '1' HOUR AS VARCHAR), 1, 10)
      AND CAST(m.date AS VARCHAR) < substr('2200-01-01T00:00:00Z', 1, 10)
),
counter_steps AS (
    SELECT usage_hour, for_hour, cluster_arn, cluster_name, broker_id, topic, metric,
           CASE WHEN prev IS NULL THEN NULL
                WHEN period_start - prev_at > INTERVAL '15' MINUTE THEN NULL
                WHEN counter >= prev THEN counter - prev
                ELSE counter END AS step
    FROM (
        SELECT c.*,
               LAG(counter) OVER (
                   PARTITION BY for_hour, cluster_arn, broker_id, topic, metric ORDER BY period_start) AS prev,
               LAG(period_start) OVER (
                   PARTITION BY for_hour, cluster_arn, broker_id, topic, metric ORDER BY period_start) AS prev_at
        FROM counters c
    ) with_prev
),
points AS (
    SELECT usage_hour, cluster_arn, cluster_name, broker_id, topic, metric, source AS src,
           CAST(bytes AS BIGINT) AS bytes
    FROM keyed
    WHERE key_doubtful = 0 AND steps > 0
    UNION ALL
    SELECT usage_hour, cluster_arn, cluster_name, broker_id, topic, metric, 'cloudwatch' AS src,
           CAST(bytes AS BIGINT) AS bytes
    FROM cloudwatch
    UNION ALL
    SELECT usage_hour, cluster_arn, cluster_name, broker_id, topic, metric, 'prometheus' AS src,
           CAST(round(step) AS BIGINT) AS bytes
    FROM counter_steps WHERE step IS NOT NULL AND usage_hour = for_hour
),
per_source AS (
    SELECT usage_hour, cluster_arn, cluster_name, broker_id, metric,
           MAX(CASE WHEN src = 'cloudwatch' THEN 1 ELSE 0 END) AS has_cloudwatch,
           SUM(CASE WHEN src = 'cloudwatch' AND topic IS NULL THEN bytes END) AS cw_total,
           SUM(CASE WHEN src = 'cloudwatch' AND topic IS NOT NULL THEN bytes END) AS cw_topics,
           SUM(CASE WHEN src = 'prometheus' AND topic IS NULL THEN bytes END) AS prom_total,
           SUM(CASE WHEN src = 'prometheus' AND topic IS NOT NULL THEN bytes END) AS prom_topics
    FROM points
    GROUP BY usage_hour, cluster_arn, cluster_name, broker_id, metric
),
broker_level AS (
    SELECT usage_hour, cluster_arn, cluster_name, broker_id,
           CASE metric WHEN 'BytesInPerSec' THEN 'to_cluster' ELSE 'from_cluster' END AS direction,
           CASE WHEN has_cloudwatch = 1 THEN cw_total ELSE prom_total END AS total_bytes,
           CASE WHEN has_cloudwatch = 1 THEN cw_topics ELSE prom_topics END AS topic_bytes
    FROM per_source
),
broker AS (
    SELECT usage_hour, cluster_arn, MAX(cluster_name) AS cluster_name, direction,
           SUM(COALESCE(total_bytes, topic_bytes)) AS broker_bytes,
           COUNT(DISTINCT broker_id) AS brokers
    FROM broker_level
    GROUP BY usage_hour, cluster_arn, direction
),
flow AS (
    SELECT usage_hour, cluster_arn, MAX(cluster_name) AS cluster_name, direction,
           SUM(CAST(bytes AS DECIMAL(38, 0))) AS flow_bytes
    FROM delta.linkmeter.billable_hours
    WHERE CAST(date AS VARCHAR) >= substr('1970-01-01T00:00:00Z', 1, 10)
      AND CAST(date AS VARCHAR) < substr('2200-01-01T00:00:00Z', 1, 10)
      AND usage_hour >= TIMESTAMP '1970-01-01 00:00:00 UTC' AND usage_hour < TIMESTAMP '2200-01-01 00:00:00 UTC'
    GROUP BY usage_hour, cluster_arn, direction
),
joined AS (
    SELECT COALESCE(f.usage_hour, b.usage_hour) AS usage_hour,
           COALESCE(f.cluster_arn, b.cluster_arn) AS cluster_arn,
           COALESCE(f.cluster_name, b.cluster_name) AS cluster_name,
           COALESCE(f.direction, b.direction) AS direction,
           COALESCE(f.flow_bytes, 0) AS flow_bytes,
           CAST(b.broker_bytes AS BIGINT) AS broker_bytes,
           b.brokers,
           CASE WHEN b.broker_bytes > 0
                THEN CAST(COALESCE(f.flow_bytes, 0) AS DOUBLE) / CAST(b.broker_bytes AS DOUBLE)
           END AS ratio
    FROM flow f
    FULL OUTER JOIN broker b
      ON f.usage_hour = b.usage_hour AND f.cluster_arn = b.cluster_arn AND f.direction = b.direction
),
typical AS (
    SELECT cluster_arn, direction, approx_percentile(ratio, 0.5) AS median_ratio
    FROM joined
    WHERE ratio > 0
    GROUP BY cluster_arn, direction
)
SELECT j.usage_hour, j.cluster_arn, j.cluster_name, j.direction, j.flow_bytes, j.broker_bytes,
       j.brokers, j.ratio, t.median_ratio,
       CASE WHEN t.median_ratio > 0 THEN j.ratio / t.median_ratio - 1 END AS deviation
FROM joined j
LEFT JOIN typical t ON j.cluster_arn = t.cluster_arn AND j.direction = t.direction;

-- reconciliation_by_scheme: flow-log bytes against the multi-VPC listeners' socket counters per cluster, auth scheme, hour and direction
CREATE OR REPLACE VIEW delta.linkmeter.reconciliation_by_scheme AS
WITH scrapes AS (
    SELECT DISTINCT period_start, usage_hour, cluster_arn, cluster_name, broker_id,
           client_authentication AS auth_scheme, metric, dimensions, counter
    FROM delta.linkmeter.broker_metrics
    WHERE metric IN ('ListenerBytesIn', 'ListenerBytesOut')
      AND counter IS NOT NULL AND cluster_arn IS NOT NULL AND client_authentication IS NOT NULL
),
chained AS (
    SELECT s.*,
           LAG(counter) OVER (
               PARTITION BY cluster_arn, broker_id, auth_scheme, metric, dimensions ORDER BY period_start) AS prev,
           LAG(period_start) OVER (
               PARTITION BY cluster_arn, broker_id, auth_scheme, metric, dimensions ORDER BY period_start) AS prev_at
    FROM scrapes s
),
steps AS (
    SELECT usage_hour, cluster_arn, cluster_name, auth_scheme, metric,
           CASE WHEN prev IS NULL THEN NULL
                WHEN period_start - prev_at > INTERVAL '15' MINUTE THEN NULL
                WHEN counter >= prev THEN counter - prev
                ELSE counter END AS step
    FROM chained
),
listener AS (
    SELECT usage_hour, cluster_arn, MAX(cluster_name) AS cluster_name, auth_scheme,
           CASE metric WHEN 'ListenerBytesIn' THEN 'to_cluster' ELSE 'from_cluster' END AS direction,
           CAST(round(SUM(step)) AS BIGINT) AS listener_bytes
    FROM steps
    WHERE step IS NOT NULL
    GROUP BY usage_hour, cluster_arn, auth_scheme, metric
),
flow AS (
    SELECT usage_hour, cluster_arn, MAX(cluster_name) AS cluster_name, auth_scheme, direction,
           SUM(CAST(bytes AS DECIMAL(38, 0))) AS flow_bytes
    FROM delta.linkmeter.billable_hours
    GROUP BY usage_hour, cluster_arn, auth_scheme, direction
)
SELECT COALESCE(f.usage_hour, l.usage_hour) AS usage_hour,
       COALESCE(f.cluster_arn, l.cluster_arn) AS cluster_arn,
       COALESCE(f.cluster_name, l.cluster_name) AS cluster_name,
       COALESCE(f.auth_scheme, l.auth_scheme) AS auth_scheme,
       COALESCE(f.direction, l.direction) AS direction,
       COALESCE(f.flow_bytes, 0) AS flow_bytes,
       l.listener_bytes,
       CASE WHEN l.listener_bytes > 0
            THEN CAST(COALESCE(f.flow_bytes, 0) AS DOUBLE) / CAST(l.listener_bytes AS DOUBLE)
       END AS ratio
FROM flow f
FULL OUTER JOIN listener l
  ON f.usage_hour = l.usage_hour AND f.cluster_arn = l.cluster_arn
 AND f.auth_scheme = l.auth_scheme AND f.direction = l.direction;

-- account_usage: billable GiB per month, account, cluster, auth scheme and direction
CREATE OR REPLACE VIEW delta.linkmeter.account_usage AS
SELECT substr(CAST(f.usage_hour AS VARCHAR), 1, 7) AS month,
       f.client_account_id AS account_id,
       a.account_name,
       a.cost_center,
       f.cluster_name,
       f.auth_scheme,
       f.direction,
       SUM(CAST(f.bytes AS DECIMAL(38, 0))) AS bytes,
       CAST(SUM(CAST(f.bytes AS DECIMAL(38, 0))) AS DOUBLE) / 1073741824.0 AS gib
FROM delta.linkmeter.billable_hours f
LEFT JOIN delta.linkmeter.accounts a ON a.account_id = f.client_account_id
GROUP BY 1, 2, 3, 4, 5, 6, 7;

-- endpoint_usage: per month and VPC endpoint: the account billed for it and its bytes
CREATE OR REPLACE VIEW delta.linkmeter.endpoint_usage AS
SELECT substr(CAST(f.usage_hour AS VARCHAR), 1, 7) AS month,
       c.endpoint_id,
       c.client_account_id AS billed_account_id,
       a.account_name AS billed_account_name,
       c.connection_arn,
       c.cluster_name,
       c.auth_scheme,
       SUM(CAST(f.bytes AS DECIMAL(38, 0))) AS bytes
FROM delta.linkmeter.billable_hours f
JOIN delta.linkmeter.connections c ON c.connection_arn = f.connection_arn
LEFT JOIN delta.linkmeter.accounts a ON a.account_id = c.client_account_id
GROUP BY 1, 2, 3, 4, 5, 6, 7;

-- unattributed_by_reason: bytes seen but not billable, per month and reason
CREATE OR REPLACE VIEW delta.linkmeter.unattributed_by_reason AS
SELECT substr(CAST(usage_hour AS VARCHAR), 1, 7) AS month,
       reason,
       CAST(COUNT(*) AS BIGINT) AS flow_rows,
       SUM(CAST(bytes AS DECIMAL(38, 0))) AS bytes,
       COUNT(DISTINCT interface_id) AS interfaces
FROM delta.linkmeter.flows
WHERE status = 'unattributed'
GROUP BY 1, 2;
