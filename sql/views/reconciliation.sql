-- reconciliation: per cluster-hour and direction, the bytes flow logs saw on private
-- connectivity (billable_hours: attributed, observation-point rule applied) against the
-- bytes the brokers counted from and to clients (broker_metrics BytesInPerSec for
-- to_cluster, BytesOutPerSec for from_cluster; broker-level datapoints, or the sum over topics
-- where a broker published only per-topic ones; CloudWatch metric streams where they cover the
-- hour, else the differences between Prometheus scrapes of the byte counters).
--
-- Flow logs count IP bytes of private-connectivity clients only; brokers count Kafka bytes of
-- every client, in-VPC ones too. So `ratio` (flow / broker) is not 1, but it is steady for a
-- cluster; `deviation` is how far an hour's ratio is from the cluster-direction's median
-- (0.1 = 10 % above). An hour with broker bytes and no flow bytes has deviation -1 (flow logs
-- missing); an hour with flow bytes and no metrics has a NULL ratio (metrics missing).
-- The median is over every hour the warehouse holds, so a closed month's deviations can move
-- a little as later months arrive. `median` is DataFusion/DuckDB (Athena: approx_percentile).
--
-- ${month_start} and ${month_end} bound the hours (the view: all of them; the month close:
-- its month, so that its work and memory grow with a month, not with the warehouse). The
-- bounds name `date` partitions too, so readers open only those files.
--
-- The broker side reads `broker_hours` (datapoints summed per file and hour), not the
-- datapoints: sums of files whose spans do not overlap share no datapoint. Only the hours of
-- a series whose files overlap (a datapoint may have been delivered twice) are read from
-- `broker_metrics`, and in the usual case, none, the join below reads no datapoint at all.
-- tests/e2e/preaggregates.rs checks the answer against the datapoints alone.
WITH hours AS (
    -- broker_hours: the byte datapoints summed per file, hour, broker, topic, metric and
    -- source (linkmeter_warehouse::broker_hours), from an hour early: the first counter step
    -- of the range needs the scrape before it.
    SELECT *
    FROM broker_hours
    WHERE CAST(date AS VARCHAR) >= substr(CAST(TIMESTAMP '${month_start}' - INTERVAL '1 hour' AS VARCHAR), 1, 10)
      AND CAST(date AS VARCHAR) < substr('${month_end}', 1, 10)
      AND usage_hour >= TIMESTAMP '${month_start}' - INTERVAL '1 hour'
      AND usage_hour < TIMESTAMP '${month_end}'
),
chained AS (
    -- Each file's rows of a series in time order, with the latest datapoint before them.
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
    -- A row whose span starts before an earlier row's ends may share datapoints with it
    -- (delivered twice); a counter row after such a row cannot trust the scrape before it.
    SELECT c.*, CASE WHEN first_at <= seen_until THEN 1 ELSE 0 END AS overlapped
    FROM chained c
),
judged AS (
    SELECT o.*,
           CASE WHEN overlapped = 1 THEN 1
                WHEN source = 'prometheus' AND LAG(overlapped) OVER (
                    PARTITION BY cluster_arn, broker_id, topic, metric, source ORDER BY first_at, last_at) = 1 THEN 1
                ELSE 0 END AS doubtful,
           -- The counter step from the previous file's last scrape to this one's first: a
           -- smaller value is a broker restart and counts from zero; after a gap of more than
           -- 15 minutes it is left out (its bytes cannot be placed in hours).
           CASE WHEN source <> 'prometheus' OR prev_at IS NULL THEN NULL
                WHEN first_at - prev_at > INTERVAL '15 minutes' THEN NULL
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
    WHERE usage_hour >= TIMESTAMP '${month_start}'
    GROUP BY usage_hour, cluster_arn, cluster_name, broker_id, topic, metric, source
),
keyed AS (
    -- Doubt belongs to the series-hour whatever cluster name its datapoints carried (the
    -- datapoints below are matched by ARN).
    SELECT s.*,
           MAX(doubtful) OVER (PARTITION BY usage_hour, cluster_arn, broker_id, topic, metric, source) AS key_doubtful
    FROM summed s
),
doubtful AS (
    SELECT DISTINCT usage_hour, cluster_arn, broker_id, topic, metric, source FROM keyed WHERE key_doubtful = 1
),
cloudwatch AS (
    -- Hours whose files overlap, from their datapoints: Firehose and Kafka relays deliver at
    -- least once, and a datapoint delivered twice counts once.
    SELECT DISTINCT m.period_start, m.usage_hour, m.cluster_arn, m.cluster_name, m.broker_id, m.topic, m.metric, m.bytes
    FROM doubtful d
    JOIN broker_metrics m
      ON m.usage_hour = d.usage_hour AND m.cluster_arn = d.cluster_arn AND m.broker_id = d.broker_id
     AND COALESCE(m.topic, '') = COALESCE(d.topic, '') AND m.metric = d.metric AND d.source = 'cloudwatch'
    WHERE m.counter IS NULL AND m.bytes IS NOT NULL
      AND CAST(m.date AS VARCHAR) >= substr('${month_start}', 1, 10)
      AND CAST(m.date AS VARCHAR) < substr('${month_end}', 1, 10)
),
counters AS (
    -- Prometheus byte counters of those hours, one row per scrape, from an hour before each.
    SELECT DISTINCT m.period_start, m.usage_hour, m.cluster_arn, m.cluster_name, m.broker_id, m.topic, m.metric, m.counter,
           d.usage_hour AS for_hour
    FROM doubtful d
    JOIN broker_metrics m
      ON m.cluster_arn = d.cluster_arn AND m.broker_id = d.broker_id
     AND COALESCE(m.topic, '') = COALESCE(d.topic, '') AND m.metric = d.metric AND d.source = 'prometheus'
     AND m.period_start >= d.usage_hour - INTERVAL '1 hour' AND m.usage_hour <= d.usage_hour
    WHERE m.counter IS NOT NULL
      AND CAST(m.date AS VARCHAR) >= substr(CAST(TIMESTAMP '${month_start}' - INTERVAL '1 hour' AS VARCHAR), 1, 10)
      AND CAST(m.date AS VARCHAR) < substr('${month_end}', 1, 10)
),
counter_steps AS (
    -- The same steps as above, between consecutive scrapes.
    SELECT usage_hour, for_hour, cluster_arn, cluster_name, broker_id, topic, metric,
           CASE WHEN prev IS NULL THEN NULL
                WHEN period_start - prev_at > INTERVAL '15 minutes' THEN NULL
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
