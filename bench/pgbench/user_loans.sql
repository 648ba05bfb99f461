-- The query of GET /loans/user/{userId} (first page; the user behind the
-- token comes from the cache).
\set k random(1, 10000)
SELECT * FROM loans WHERE user_id = md5('u' || :k)::uuid ORDER BY id DESC LIMIT 21;
