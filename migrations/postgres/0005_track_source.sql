-- Who named a track: the DJ (dashboard, DJ software) or automatic song recognition. A DJ's
-- own entry is never overridden by recognition for a while, so the two must be told apart.
ALTER TABLE tracks ADD COLUMN source TEXT NOT NULL DEFAULT 'dj';
