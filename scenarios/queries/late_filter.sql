-- Requests per country in the last week, with the time filter written after the join.
SELECT b.country, count(*) AS requests
FROM access_log a
JOIN users b ON b.user_id = a.user_id
WHERE a.time >= TIMESTAMP '2017-01-24 00:00:00'
GROUP BY b.country
