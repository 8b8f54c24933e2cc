-- reconciliation_datapoints: the reconciliation view (sql/views/reconciliation.sql) computed
-- from the broker_metrics datapoints alone, without broker_hours: for audits, and the check
-- that the summarized view gives the same answer (tests/e2e/preaggregates.rs, with datapoints
-- delivered twice). It reads every datapoint of the range, so its work grows with them.
-- Parameters: ${month_start}, ${month_end} (see the view).
WITH cloudwatch AS (
    -- Firehose and Kafka relays deliver at least once: a datapoint delivered twice counts once.
    SELECT DISTINCT period_start, usage_hour, cluster_arn, cluster_name, broker_id, topic, metric, bytes
    FROM broker_metrics
    WHERE metric IN ('BytesInPerSec', 'BytesOutPerSec') AND cluster_arn IS NOT NULL
      AND broker_id IS NOT NULL AND counter IS NULL AND bytes IS NOT NULL
      AND CAST(date AS VARCHAR) >= substr('${month_start}', 1, 10)
      AND CAST(date AS VARCHAR) < substr('${month_end}', 1, 10)
      AND usage_hour >= TIMESTAMP '${month_start}' AND usage_hour < TIMESTAMP '${month_end}'
),
counters AS (
    -- Prometheus byte counters (open monitoring), one row per scrape.
    SELECT DISTINCT period_start, usage_hour, cluster_arn, cluster_name, broker_id, topic, metric, counter
    FROM broker_metrics
    WHERE metric IN ('BytesInPerSec', 'BytesOutPerSec') AND cluster_arn IS NOT NULL
      AND broker_id IS NOT NULL AND counter IS NOT NULL
      -- From an hour early: the first step of the range needs the scrape before it.
      AND CAST(date AS VARCHAR) >= substr(CAST(TIMESTAMP '${month_start}' - INTERVAL '1 hour' AS VARCHAR), 1, 10)
      AND CAST(date AS VARCHAR) < substr('${month_end}', 1, 10)
      AND period_start >= TIMESTAMP '${month_start}' - INTERVAL '1 hour'
      AND usage_hour < TIMESTAMP '${month_end}'
),
counter_steps AS (
    -- Bytes between consecutive scrapes, counted in the later scrape's hour; a smaller value
    -- than the previous one is a broker restart, and counts from zero. After a gap of more
    -- than 15 minutes between scrapes the step is left out: its bytes cannot be placed in
    -- hours, and the hours around the gap show as metrics missing rather than as a spike.
    SELECT usage_hour, cluster_arn, cluster_name, broker_id, topic, metric,
           CASE WHEN prev IS NULL THEN NULL
                WHEN period_start - prev_at > INTERVAL '15 minutes' THEN NULL
                WHEN counter >= prev THEN counter - prev
                ELSE counter END AS step
    FROM (
        SELECT c.*,
               LAG(counter) OVER (
                   PARTITION BY cluster_arn, broker_id, topic, metric ORDER BY period_start) AS prev,
               LAG(period_start) OVER (
                   PARTITION BY cluster_arn, broker_id, topic, metric ORDER BY period_start) AS prev_at
        FROM counters c
    ) with_prev
),
points AS (
    SELECT usage_hour, cluster_arn, cluster_name, broker_id, topic, metric, 'cloudwatch' AS src,
           CAST(bytes AS BIGINT) AS bytes
    FROM cloudwatch
    UNION ALL
    SELECT usage_hour, cluster_arn, cluster_name, broker_id, topic, metric, 'prometheus' AS src,
           CAST(round(step) AS BIGINT) AS bytes
    FROM counter_steps
    WHERE step IS NOT NULL AND usage_hour >= TIMESTAMP '${month_start}'
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
    -- Per broker-hour one source: CloudWatch when it has any datapoint there, else Prometheus.
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
    FROM billable_hours
    WHERE CAST(date AS VARCHAR) >= substr('${month_start}', 1, 10)
      AND CAST(date AS VARCHAR) < substr('${month_end}', 1, 10)
      AND usage_hour >= TIMESTAMP '${month_start}' AND usage_hour < TIMESTAMP '${month_end}'
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
    SELECT cluster_arn, direction, median(ratio) AS median_ratio
    FROM joined
    WHERE ratio > 0
    GROUP BY cluster_arn, direction
)
SELECT j.usage_hour, j.cluster_arn, j.cluster_name, j.direction, j.flow_bytes, j.broker_bytes,
       j.brokers, j.ratio, t.median_ratio,
       CASE WHEN t.median_ratio > 0 THEN j.ratio / t.median_ratio - 1 END AS deviation
FROM joined j
LEFT JOIN typical t ON j.cluster_arn = t.cluster_arn AND j.direction = t.direction
