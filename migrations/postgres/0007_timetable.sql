-- The timetable: booked slots. `status` is 'requested' (a DJ asked, an admin has not
-- approved yet) or 'approved'; only approved bookings count for the queue and may not
-- overlap, which the application checks in a transaction (SQL has no portable exclusion
-- constraint). `created_by` is who booked or requested it.
CREATE TABLE bookings (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    starts_at   BIGINT NOT NULL,
    length_secs BIGINT NOT NULL CHECK (length_secs > 0),
    hard_start  BIGINT NOT NULL DEFAULT 0 CHECK (hard_start IN (0, 1)),
    status      TEXT   NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'approved')),
    created_by  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX bookings_start ON bookings (starts_at);

-- A DJ's own set length, set by an admin; NULL: the channel's swap interval.
ALTER TABLE users ADD COLUMN default_set_secs BIGINT;
