-- Look-alike DJ names (fullwidth, Greek or Cyrillic letters, 1 for l) are refused through
-- their UTS #39 confusable skeleton, computed by the application
-- (`store::users::dj_name_skeleton`): SQL cannot. The application fills it for existing
-- rows when it starts; a row that is already a look-alike of another keeps NULL (unique
-- indexes allow any number of NULLs) and is reported in the log.
ALTER TABLE users ADD COLUMN dj_name_skeleton TEXT;
CREATE UNIQUE INDEX users_dj_name_skeleton_key ON users (dj_name_skeleton);
