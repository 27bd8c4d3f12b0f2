-- API tokens carry the version current when they were issued; bumping it (password change
-- or reset, disable) revokes every token of the account at once.
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
