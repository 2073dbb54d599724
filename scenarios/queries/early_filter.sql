-- The same, with the fact table shrunk in a subquery before the join (the seed's advice).
SELECT b.country, count(*) AS requests
FROM (
    SELECT user_id FROM access_log
    WHERE time >= TIMESTAMP '2017-01-24 00:00:00'
) a
JOIN users b ON b.user_id = a.user_id
GROUP BY b.country
