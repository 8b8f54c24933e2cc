-- idle_endpoint_enis: endpoint ENIs of the inventory that never carried traffic in the
-- warehouse (an AZ without clients still costs endpoint hours).
SELECT e.endpoint_eni, e.endpoint_id, e.az_id, e.connection_arn
FROM endpoint_enis e
LEFT JOIN (SELECT DISTINCT endpoint_eni FROM flows WHERE endpoint_eni IS NOT NULL) f
  ON f.endpoint_eni = e.endpoint_eni
WHERE f.endpoint_eni IS NULL
ORDER BY e.connection_arn, e.az_id
