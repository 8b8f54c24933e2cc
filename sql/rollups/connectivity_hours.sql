-- connectivity_hours: every clock hour of the month in which a cluster had multi-VPC
-- connectivity turned on for an auth scheme (billed to the cluster owner). A partial hour is a
-- full hour, as for endpoint hours.
--
-- Parameters: ${month_start}, ${month_end} (see usage_hourly.sql).
WITH spans AS (
    SELECT
        k.cluster_arn,
        c.cluster_name,
        c.region,
        c.owner_account_id AS account_id,
        k.auth_scheme,
        GREATEST(date_trunc('hour', k.turned_on), TIMESTAMP '${month_start}') AS first_hour,
        LEAST(
            date_trunc('hour', COALESCE(k.turned_off, TIMESTAMP '${month_end}') - INTERVAL '1 microsecond'),
            TIMESTAMP '${month_end}' - INTERVAL '1 hour'
        ) AS last_hour
    FROM cluster_connectivity k
    JOIN clusters c ON c.cluster_arn = k.cluster_arn
)
SELECT usage_hour, account_id, cluster_arn, cluster_name, region, auth_scheme
FROM (
    SELECT spans.*, unnest(generate_series(first_hour, last_hour, INTERVAL '1 hour')) AS usage_hour
    FROM spans
    WHERE first_hour <= last_hour
) hours
