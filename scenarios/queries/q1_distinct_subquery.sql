-- Q1, the seed's efficient form: DISTINCT (date, user_id) in a subquery spreads the work
-- over both columns; the outer count then sees at most one row per user and day.
SELECT date, count(*) AS users
FROM (
    SELECT DISTINCT date, user_id FROM access_log
) t
GROUP BY date
