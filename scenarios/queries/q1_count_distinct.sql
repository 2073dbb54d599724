-- Q1, the seed's inefficient form (3-2 "avoid data skew"): distinct users per day.
-- Every row of a day must meet in one task, so the hot day's task is the straggler.
SELECT date, count(DISTINCT user_id) AS users
FROM access_log
GROUP BY date
