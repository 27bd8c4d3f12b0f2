-- DJ names are unique and looked up case-insensitively through a key the application
-- computes (Unicode lower case, `store::users::dj_name_key`) instead of SQL lower():
-- SQLite's lower() folds only ASCII while Postgres's follows the database locale, so the
-- two backends disagreed on whether "DJ Ölaf" and "dj ölaf" are the same DJ.
-- lower() is only a first fill; the application rewrites keys that differ when it starts.
ALTER TABLE users ADD COLUMN dj_name_key TEXT;
UPDATE users SET dj_name_key = lower(dj_name);
ALTER TABLE users ALTER COLUMN dj_name_key SET NOT NULL;
DROP INDEX users_dj_name_key;
CREATE UNIQUE INDEX users_dj_name_key ON users (dj_name_key);
