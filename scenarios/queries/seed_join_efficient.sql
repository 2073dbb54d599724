-- The seed's efficient form (3-2): shrink the fact table in a subquery before the join.
SELECT a.time, a.user_id, a.url_id, b.country
FROM (
    SELECT * FROM access_log
    WHERE time >= TIMESTAMP '2017-01-01 00:00:00'
) a
JOIN users b ON b.user_id = a.user_id
WHERE b.created_at = '2017-01-01'
