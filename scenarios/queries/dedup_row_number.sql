-- Distinct users per day, de-duplicated by row_number over (date, user_id): the window's
-- exchange spreads the hot day over every task, and the top-N per group keeps one row per
-- (date, user_id) and scan task before the exchange.
SELECT date, count(*) AS users
FROM (
    SELECT date, user_id,
           row_number() OVER (PARTITION BY date, user_id ORDER BY time) AS rn
    FROM access_log
) t
WHERE rn = 1
GROUP BY date
