-- The seed's inefficient form (3-2): join the whole fact table, filter afterwards.
-- (DataTable = access_log, UserTable = users, b.id = b.user_id; the seed's "SELECT ..." is
-- filled in with a few columns of both sides.)
SELECT a.time, a.user_id, a.url_id, b.country
FROM access_log a
JOIN users b ON b.user_id = a.user_id
WHERE b.created_at = '2017-01-01'
