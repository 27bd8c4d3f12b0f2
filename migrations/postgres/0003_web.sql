-- Browser sessions. The cookie holds a random token; only its SHA-256 is stored, so a copy
-- of the database does not hand out logged-in sessions.
CREATE TABLE sessions (
    token_hash TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Password reset links: single use, short-lived; only the token's SHA-256 is stored.
CREATE TABLE password_resets (
    token_hash TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- Each time a DJ went on air; `recording` is the set's file when recording was on.
CREATE TABLE sets (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    dj_name    TEXT   NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    end_reason TEXT,
    recording  TEXT
);
CREATE INDEX sets_user ON sets (user_id, started_at);

-- Now playing: tracks a DJ announced. `set_id` is the set it was played in (NULL when
-- announced before going on air; the set adopts it when it starts).
CREATE TABLE tracks (
    id      BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    set_id  BIGINT REFERENCES sets (id) ON DELETE CASCADE,
    artist  TEXT   NOT NULL,
    title   TEXT   NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX tracks_user ON tracks (user_id, at);
CREATE INDEX tracks_set ON tracks (set_id);
