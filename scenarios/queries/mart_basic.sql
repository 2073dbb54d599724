-- The seed's basic data-mart aggregation (3-3): fact -> dimension join -> group.
SELECT
    date_trunc('day', a.time) AS time,
    date_diff('day', b.min_time, a.time) AS days,
    count(*) AS count
FROM (
    -- only the columns needed from the fact table, and only the period searched
    SELECT time, session_id FROM access_log
    WHERE time BETWEEN TIMESTAMP '2017-01-01' AND TIMESTAMP '2018-01-01'
) a
JOIN sessions b ON b.session_id = a.session_id
GROUP BY 1, 2
