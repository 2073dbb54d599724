-- A filter on the SQLite table (plan) is sent to SQLite; the time filter prunes Parquet files.
SELECT u.country, count(DISTINCT a.user_id) AS users, count(*) AS requests
FROM access_log a
JOIN users u ON u.user_id = a.user_id
WHERE u.plan IN ('pro', 'enterprise')
  AND a.time >= TIMESTAMP '2017-01-24 00:00:00'
GROUP BY u.country
