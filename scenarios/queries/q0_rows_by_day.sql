-- Q0: rows per day (a two-phase aggregation: partial per fragment, final per hash bucket)
SELECT date, count(*) AS requests
FROM access_log
GROUP BY date
