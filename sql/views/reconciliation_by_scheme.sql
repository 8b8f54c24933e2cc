-- reconciliation_by_scheme: per cluster, auth scheme, hour and direction, the bytes flow logs
-- saw on private connectivity (billable_hours) against the bytes the brokers' multi-VPC
-- listeners counted: Kafka's socket-server-metrics `incoming-byte-total` (to_cluster) and
-- `outgoing-byte-total` (from_cluster) of the listeners CLIENT_IAM_VPCE (SASL_IAM),
-- CLIENT_SASL_SCRAM_VPCE (SASL_SCRAM) and CLIENT_SECURE_VPCE (TLS), from Prometheus scrapes,
-- summed over brokers and network processors.
--
-- A listener counter holds exactly one scheme's private-connectivity clients (no in-VPC
-- clients, no replication), but counts bytes after TLS, without IP, TCP and TLS overhead: so
-- `ratio` (flow / listener) is a little above 1 and steady for a cluster and scheme. An hour
-- with listener bytes and no flow bytes has ratio 0 (flow logs missing); with flow bytes and no
-- scrapes, NULL.
--
-- Steps between consecutive scrapes of one series (cluster, broker, listener, network
-- processor): a smaller value is a broker restart and counts from zero; a step after more than
-- 15 minutes without a scrape is left out (its bytes cannot be placed in hours); a scrape
-- delivered twice counts once. A step belongs to the hour of its later scrape.
WITH scrapes AS (
    SELECT DISTINCT period_start, usage_hour, cluster_arn, cluster_name, broker_id,
           client_authentication AS auth_scheme, metric, dimensions, counter
    FROM broker_metrics
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
                WHEN period_start - prev_at > INTERVAL '15 minutes' THEN NULL
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
    FROM billable_hours
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
 AND f.auth_scheme = l.auth_scheme AND f.direction = l.direction
