-- endpoint_hours: every clock hour of the month in which an endpoint ENI (one endpoint in one
-- AZ) was provisioned. A partial hour is a full hour (AWS PrivateLink pricing): a connection
-- created at 09:40 bills hour 09; one deleted at 10:20 bills hour 10, one deleted at 11:00
-- exactly does not bill hour 11.
--
-- Parameters: ${month_start}, ${month_end} (see usage_hourly.sql).
WITH spans AS (
    SELECT
        c.client_account_id AS account_id,
        c.cluster_arn,
        c.cluster_name,
        c.region,
        c.auth_scheme,
        c.connection_arn,
        c.endpoint_id,
        e.az_id,
        e.endpoint_eni,
        GREATEST(date_trunc('hour', c.created_at), TIMESTAMP '${month_start}') AS first_hour,
        LEAST(
            date_trunc('hour', COALESCE(c.deleted_at, TIMESTAMP '${month_end}') - INTERVAL '1 microsecond'),
            TIMESTAMP '${month_end}' - INTERVAL '1 hour'
        ) AS last_hour
    FROM connections c
    JOIN endpoint_enis e ON e.connection_arn = c.connection_arn
)
SELECT
    usage_hour, account_id, cluster_arn, cluster_name, region, auth_scheme, connection_arn,
    endpoint_id, az_id, endpoint_eni
FROM (
    SELECT spans.*, unnest(generate_series(first_hour, last_hour, INTERVAL '1 hour')) AS usage_hour
    FROM spans
    WHERE first_hour <= last_hour
) hours
