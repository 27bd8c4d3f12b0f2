-- Issue 14, "up next": a DJ may ask for an email when they are next (0/1, off by default)
-- and link their Discord user id (a snowflake, 17 to 20 digits, checked by the
-- application) so that the up-next Discord message mentions them.
ALTER TABLE users ADD COLUMN up_next_email BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN discord_user_id TEXT;
