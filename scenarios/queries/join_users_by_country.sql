-- The fact table joined with a small dimension: requests and bytes per country and plan.
SELECT u.country, u.plan, count(*) AS requests, sum(a.bytes) AS bytes
FROM access_log a
JOIN users u ON u.user_id = a.user_id
GROUP BY u.country, u.plan
