-- Distinct users per day, de-duplicated by row_number over the hot day: within a day ordered by
-- user, a user's first row is the one whose row number equals its rank. The window is
-- partitioned by date alone, so every row of the hot day meets in one task.
SELECT date, count(*) AS users
FROM (
    SELECT date, user_id,
           row_number() OVER (PARTITION BY date ORDER BY user_id, time) AS rn,
           rank() OVER (PARTITION BY date ORDER BY user_id) AS first_rn
    FROM access_log
) t
WHERE rn = first_rn
GROUP BY date
