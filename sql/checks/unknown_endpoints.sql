-- unknown_endpoints: endpoint addresses that carried traffic on MSK multi-VPC ports
-- (14001-14100) but are not endpoint ENIs of the inventory (flows unattributed as
-- unknown_endpoint), per account and VPC seen, with how many interfaces logged them.
SELECT CASE direction WHEN 'to_cluster' THEN dstaddr ELSE srcaddr END AS endpoint_address,
       log_account_id,
       log_vpc_id,
       CAST(COUNT(DISTINCT interface_id) AS BIGINT) AS interfaces_seen,
       MIN(interface_id) AS for_example,
       CAST(COUNT(*) AS BIGINT) AS flow_rows,
       SUM(CAST(bytes AS DECIMAL(38, 0))) AS bytes,
       MIN(usage_hour) AS first_hour,
       MAX(usage_hour) AS last_hour
FROM flows
WHERE reason = 'unknown_endpoint'
GROUP BY 1, 2, 3
ORDER BY 7 DESC
