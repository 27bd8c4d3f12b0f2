//! Accounts: the `users` table.

use sqlx::FromRow;

use super::{Backend, Store, StoreError, conflict_field, unix_now};

/// One account. `stream_key` is a secret: never show it on public pages or to other users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub dj_name: String,
    pub email: String,
    pub password_hash: String,
    pub timezone: String,
    pub stream_key: String,
    pub is_active: bool,
    pub is_admin: bool,
    pub profile_picture: Option<String>,
    pub created_at: i64,
    /// API tokens issued with another version are refused (see [`Store::set_password_hash`]).
    pub token_version: i64,
    /// An email when they are up next (opt-in).
    pub up_next_email: bool,
    /// Their Discord user id (a snowflake), mentioned in the up-next message.
    pub discord_user_id: Option<String>,
}

/// A `users` row as stored: flags are 0/1 integers (see the migrations).
#[derive(FromRow)]
pub(super) struct UserRow {
    id: i64,
    dj_name: String,
    email: String,
    password_hash: String,
    timezone: String,
    stream_key: String,
    is_active: i64,
    is_admin: i64,
    profile_picture: Option<String>,
    created_at: i64,
    token_version: i64,
    up_next_email: i64,
    discord_user_id: Option<String>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: r.id,
            dj_name: r.dj_name,
            email: r.email,
            password_hash: r.password_hash,
            timezone: r.timezone,
            stream_key: r.stream_key,
            is_active: r.is_active != 0,
            is_admin: r.is_admin != 0,
            profile_picture: r.profile_picture,
            created_at: r.created_at,
            token_version: r.token_version,
            up_next_email: r.up_next_email != 0,
            discord_user_id: r.discord_user_id,
        }
    }
}

/// The fields a user edits on their settings page; validated by the caller.
#[derive(Debug, Clone)]
pub struct Profile {
    pub dj_name: String,
    pub email: String,
    pub timezone: String,
}

/// What it takes to create an account; inputs are expected to be validated already.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub dj_name: String,
    pub email: String,
    pub password_hash: String,
    pub stream_key: String,
    /// An admin account (only the operator makes them: CLI, setup link, admin console).
    pub is_admin: bool,
}

/// When the row being changed may stop being an active admin: it is not one, or another
/// active admin remains.
const KEEPS_AN_ADMIN: &str = "(is_admin = 0 OR is_active = 0 OR EXISTS \
     (SELECT 1 FROM users other WHERE other.id <> users.id AND other.is_admin = 1 AND other.is_active = 1))";

pub(super) const COLUMNS: &str = "id, dj_name, email, password_hash, timezone, stream_key, is_active, \
                       is_admin, profile_picture, created_at, token_version, up_next_email, discord_user_id";

impl Store {
    /// Creates an account.
    pub async fn create_user(&self, new: &NewUser) -> Result<User, StoreError> {
        for (field, value) in [
            ("dj_name", &new.dj_name),
            ("email", &new.email),
            ("password_hash", &new.password_hash),
            ("stream_key", &new.stream_key),
        ] {
            refuse_nul(field, value)?;
        }
        let sql = format!(
            "INSERT INTO users (dj_name, dj_name_key, dj_name_skeleton, email, password_hash, stream_key, is_admin, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        );
        let user = sqlx::query_as::<_, UserRow>(&sql)
            .bind(&new.dj_name)
            .bind(dj_name_key(&new.dj_name))
            .bind(dj_name_skeleton(&new.dj_name))
            .bind(new.email.to_lowercase())
            .bind(&new.password_hash)
            .bind(&new.stream_key)
            .bind(i64::from(new.is_admin))
            .bind(unix_now())
            .fetch_one(&self.pool)
            .await
            .map(User::from)
            .map_err(map_conflict)?;
        Ok(user)
    }

    /// Whether some account can run the channel; without one the server offers a setup link.
    pub async fn has_active_admin(&self) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE is_admin = 1 AND is_active = 1 LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.user_where("id = $1", id).await
    }

    pub async fn user_by_stream_key(&self, key: &str) -> Result<Option<User>, StoreError> {
        if key.contains('\0') {
            return Ok(None); // never stored (see `refuse_nul`), and Postgres rejects it in a query
        }
        self.user_where("stream_key = $1", key.to_owned()).await
    }

    /// Looks a user up by DJ name, case-insensitively.
    pub async fn user_by_dj_name(&self, dj_name: &str) -> Result<Option<User>, StoreError> {
        if dj_name.contains('\0') {
            return Ok(None);
        }
        self.user_where("dj_name_key = $1", dj_name_key(dj_name)).await
    }

    /// Looks a user up by what they type in a login form: their email or DJ name.
    pub async fn user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        let login = login.trim();
        if login.contains('\0') {
            return Ok(None);
        }
        if login.contains('@') {
            self.user_where("email = $1", login.to_lowercase()).await
        } else {
            self.user_by_dj_name(login).await
        }
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users ORDER BY id");
        let rows = sqlx::query_as::<_, UserRow>(&sql).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Replaces a user's stream key (the old one stops working at once).
    pub async fn set_stream_key(&self, id: i64, key: &str) -> Result<(), StoreError> {
        refuse_nul("stream_key", key)?;
        let done = sqlx::query("UPDATE users SET stream_key = $1 WHERE id = $2")
            .bind(key)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_conflict)?;
        found(done.rows_affected())
    }

    /// The DJ's up-next notifications: an email or not, and the Discord user id to mention
    /// (validated by the caller).
    pub async fn set_up_next(&self, id: i64, email: bool, discord_user_id: Option<&str>) -> Result<(), StoreError> {
        if let Some(discord) = discord_user_id {
            refuse_nul("discord_user_id", discord)?;
        }
        let done = sqlx::query("UPDATE users SET up_next_email = $1, discord_user_id = $2 WHERE id = $3")
            .bind(i64::from(email))
            .bind(discord_user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        found(done.rows_affected())
    }

    /// Enables or disables an account; a disabled account's key is refused on publish, and
    /// its API tokens die (they stay dead if the account is enabled again).
    /// Refuses ([`StoreError::LastAdmin`]) to disable the last active admin.
    pub async fn set_active(&self, id: i64, active: bool) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE users SET is_active = $1, token_version = token_version + 1 \
             WHERE id = $2 AND ($1 = 1 OR {KEEPS_AN_ADMIN})"
        );
        self.keeping_an_admin(id, sqlx::query(&sql).bind(i64::from(active)).bind(id)).await
    }

    /// Changes what a user shows and logs in with. DJ name (up to look-alikes) and email
    /// stay unique ([`StoreError::Conflict`] names the taken one). The skeleton is kept when
    /// the name does not change, so that an old look-alike without one (see
    /// [`Store::refresh_dj_name_keys`]) can still edit the rest of their profile.
    pub async fn update_profile(&self, id: i64, profile: &Profile) -> Result<(), StoreError> {
        for (field, value) in
            [("dj_name", &profile.dj_name), ("email", &profile.email), ("timezone", &profile.timezone)]
        {
            refuse_nul(field, value)?;
        }
        // Placeholders appear in numeric order: SQLite numbers `$N` by first appearance.
        // Every SET expression reads the row as it was, so the CASE sees the old name.
        let done = sqlx::query(
            "UPDATE users SET dj_name_skeleton = CASE WHEN dj_name = $1 THEN dj_name_skeleton ELSE $2 END, \
             dj_name = $1, dj_name_key = $3, email = $4, timezone = $5 WHERE id = $6",
        )
        .bind(&profile.dj_name)
        .bind(dj_name_skeleton(&profile.dj_name))
        .bind(dj_name_key(&profile.dj_name))
        .bind(profile.email.to_lowercase())
        .bind(&profile.timezone)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(map_conflict)?;
        found(done.rows_affected())
    }

    /// Replaces the password and revokes every API token of the account in the same write,
    /// so that a token stolen before a change or reset cannot outlive it.
    pub async fn set_password_hash(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1, token_version = token_version + 1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await?;
        found(done.rows_affected())
    }

    /// Promotes or demotes; refuses ([`StoreError::LastAdmin`]) to demote the last active
    /// admin.
    pub async fn set_admin(&self, id: i64, admin: bool) -> Result<(), StoreError> {
        let sql = format!("UPDATE users SET is_admin = $1 WHERE id = $2 AND ($1 = 1 OR {KEEPS_AN_ADMIN})");
        self.keeping_an_admin(id, sqlx::query(&sql).bind(i64::from(admin)).bind(id)).await
    }

    /// Sets (or clears) the file name of a user's profile picture; returns the one it
    /// replaced, which the caller may now delete. Concurrent replacements each get a
    /// different previous file (compare and swap), so none is deleted twice or orphaned.
    pub async fn replace_profile_picture(&self, id: i64, file: Option<&str>) -> Result<Option<String>, StoreError> {
        // Each failed swap means another replacement succeeded meanwhile: progress is made,
        // and a bound keeps a pathological storm from spinning here.
        for _ in 0..64 {
            let current: Option<(Option<String>,)> = sqlx::query_as("SELECT profile_picture FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            let Some((previous,)) = current else { return Err(StoreError::NotFound) };
            let done = sqlx::query(
                "UPDATE users SET profile_picture = $1 WHERE id = $2 AND COALESCE(profile_picture, '') = $3",
            )
            .bind(file.map(str::to_owned))
            .bind(id)
            .bind(previous.clone().unwrap_or_default())
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(previous);
            }
        }
        Err(StoreError::Busy)
    }

    /// Every picture file some account refers to.
    pub async fn profile_pictures(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT profile_picture FROM users WHERE profile_picture IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(file,)| file).collect())
    }

    /// Deletes an account with its sessions, reset links, sets and tracks (foreign keys
    /// cascade; recordings on disk are kept for the organisers). Refuses
    /// ([`StoreError::LastAdmin`]) to delete the last active admin.
    pub async fn delete_user(&self, id: i64) -> Result<(), StoreError> {
        let sql = format!("DELETE FROM users WHERE id = $1 AND {KEEPS_AN_ADMIN}");
        self.keeping_an_admin(id, sqlx::query(&sql).bind(id)).await
    }

    /// Runs a change to account `id` whose SQL holds [`KEEPS_AN_ADMIN`]: no row changed means
    /// no such account or the last active admin.
    async fn keeping_an_admin<'q>(
        &self,
        id: i64,
        change: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // Under READ COMMITTED two admins demoting each other would each see the other
            // still active; this lock serialises the changes (see `create_user`).
            sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        }
        let done = change.execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            let exists: Option<(i64,)> =
                sqlx::query_as("SELECT id FROM users WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
            return Err(if exists.is_some() { StoreError::LastAdmin } else { StoreError::NotFound });
        }
        tx.commit().await?;
        Ok(())
    }

    /// Rewrites every `dj_name_key` and `dj_name_skeleton` that differs from what
    /// [`dj_name_key`] and [`dj_name_skeleton`] make of its name: the migrations could only
    /// fill keys with SQL lower() and skeletons not at all, and a newer Unicode version may
    /// change skeletons. Run at start-up; cheap once they are right. Returns how many rows
    /// changed. Names that already collide keep their old value, with a warning: refusing
    /// to start over accounts that exist would help nobody.
    pub(super) async fn refresh_dj_name_keys(&self) -> Result<usize, StoreError> {
        let rows: Vec<(i64, String, String, Option<String>)> =
            sqlx::query_as("SELECT id, dj_name, dj_name_key, dj_name_skeleton FROM users ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        let mut changed = 0;
        for (id, name, key, skeleton) in rows {
            let columns = [
                ("dj_name_key", Some(key), dj_name_key(&name), "differs only in letter case from"),
                ("dj_name_skeleton", skeleton, dj_name_skeleton(&name), "looks like"),
            ];
            let mut row_changed = false;
            for (column, have, want, relation) in columns {
                if have.as_deref() == Some(want.as_str()) {
                    continue;
                }
                let sql = format!("UPDATE users SET {column} = $1 WHERE id = $2");
                match sqlx::query(&sql).bind(&want).bind(id).execute(&self.pool).await.map_err(map_conflict) {
                    Ok(_) => row_changed = true,
                    Err(StoreError::Conflict(_)) => tracing::warn!(
                        "DJ name {name:?} (user {id}) {relation} another account's; \
                         rename one of them to make lookups and look-alike checks exact"
                    ),
                    Err(e) => return Err(e),
                }
            }
            changed += usize::from(row_changed);
        }
        Ok(changed)
    }

    async fn user_where<T>(&self, condition: &str, value: T) -> Result<Option<User>, StoreError>
    where
        T: Send + for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE {condition}");
        let row = sqlx::query_as::<_, UserRow>(&sql).bind(value).fetch_optional(&self.pool).await?;
        Ok(row.map(User::from))
    }
}

/// The form of a DJ name that is unique and that lookups compare: its Unicode lower case,
/// computed here so that both backends (and every database locale) agree.
pub(crate) fn dj_name_key(dj_name: &str) -> String {
    dj_name.to_lowercase()
}

/// The form of a DJ name that must be unique: its UTS #39 confusable skeleton, taken of
/// the NFKC lower case (skeletons keep case: `ALICE` and `alice` differ), then lower-cased
/// and taken again, as a skeleton may bring capitals (`0` becomes `O`) that fold further.
pub(crate) fn dj_name_skeleton(dj_name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded = dj_name.nfkc().collect::<String>().to_lowercase();
    let once = unicode_security::skeleton(&folded).collect::<String>().to_lowercase();
    unicode_security::skeleton(&once).collect()
}

/// Postgres cannot store NUL in text, SQLite can: refuse it on both so they behave alike.
pub(super) fn refuse_nul(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.contains('\0') { Err(StoreError::Invalid(field)) } else { Ok(()) }
}

pub(super) fn map_conflict(err: sqlx::Error) -> StoreError {
    match conflict_field(&err) {
        Some(field) => StoreError::Conflict(field),
        None => StoreError::from(err),
    }
}

fn found(rows: u64) -> Result<(), StoreError> {
    if rows == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::store_test;

    fn new_user(name: &str, key: &str) -> NewUser {
        NewUser {
            dj_name: name.into(),
            email: format!("{}@Example.org", name.to_lowercase()),
            password_hash: "hash".into(),
            stream_key: key.into(),
            is_admin: false,
        }
    }

    fn admin_named(name: &str, key: &str) -> NewUser {
        NewUser { is_admin: true, ..new_user(name, key) }
    }

    store_test! {
        async fn accounts_are_admins_only_when_asked_even_the_first(store) {
            let a = store.create_user(&new_user("Alice", "k1")).await.unwrap();
            assert!(!a.is_admin, "the first account is a DJ like the others");
            assert!(!store.has_active_admin().await.unwrap());
            let b = store.create_user(&admin_named("Bob", "k2")).await.unwrap();
            assert!(b.is_admin);
            assert!(store.has_active_admin().await.unwrap());
            assert!(a.is_active);
            assert_eq!(a.email, "alice@example.org", "emails are stored lower-case");
            assert_eq!(a.timezone, "UTC");
        }
    }

    store_test! {
        async fn unique_fields_report_which_one_conflicts(store) {
            store.create_user(&new_user("Alice", "k1")).await.unwrap();
            let mut dup_name = new_user("ALICE", "k2");
            dup_name.email = "other@example.org".into();
            assert!(matches!(store.create_user(&dup_name).await, Err(StoreError::Conflict("dj_name"))));
            let mut dup_email = new_user("Carol", "k3");
            dup_email.email = "ALICE@example.org".into();
            assert!(matches!(store.create_user(&dup_email).await, Err(StoreError::Conflict("email"))));
            assert!(matches!(store.create_user(&new_user("Dave", "k1")).await, Err(StoreError::Conflict("stream_key"))));
        }
    }

    store_test! {
        async fn lookups_key_rotation_and_disable(store) {
            store.create_user(&admin_named("Root", "k0")).await.unwrap();
            let a = store.create_user(&new_user("Alice", "k1")).await.unwrap();
            assert_eq!(store.user_by_stream_key("k1").await.unwrap().unwrap().id, a.id);
            assert_eq!(store.user_by_login("ALICE@example.org").await.unwrap().unwrap().id, a.id);
            assert_eq!(store.user_by_login("alice").await.unwrap().unwrap().id, a.id);
            assert_eq!(store.user_by_id(a.id).await.unwrap().unwrap().dj_name, "Alice");

            store.set_stream_key(a.id, "k9").await.unwrap();
            assert!(store.user_by_stream_key("k1").await.unwrap().is_none());
            assert!(store.user_by_stream_key("k9").await.unwrap().is_some());

            store.set_active(a.id, false).await.unwrap();
            assert!(!store.user_by_id(a.id).await.unwrap().unwrap().is_active);
            assert!(matches!(store.set_active(999, false).await, Err(StoreError::NotFound)));
            assert_eq!(store.list_users().await.unwrap().len(), 2);
        }
    }

    store_test! {
        async fn profile_password_role_picture_and_deletion(store) {
            let a = store.create_user(&admin_named("Alice", "k1")).await.unwrap();
            let b = store.create_user(&new_user("Bob", "k2")).await.unwrap();
            let profile = |name: &str, email: &str| Profile {
                dj_name: name.into(),
                email: email.into(),
                timezone: "Europe/Paris".into(),
            };
            store.update_profile(b.id, &profile("Bobby", "Bobby@Example.org")).await.unwrap();
            let bobby = store.user_by_login("bobby").await.unwrap().unwrap();
            assert_eq!((bobby.email.as_str(), bobby.timezone.as_str()), ("bobby@example.org", "Europe/Paris"));
            assert!(matches!(
                store.update_profile(b.id, &profile("ALICE", "x@example.org")).await,
                Err(StoreError::Conflict("dj_name"))
            ));
            assert!(matches!(
                store.update_profile(b.id, &profile("Bob", "alice@example.org")).await,
                Err(StoreError::Conflict("email"))
            ));

            store.set_password_hash(b.id, "new-hash").await.unwrap();
            store.set_admin(b.id, true).await.unwrap();
            assert_eq!(store.replace_profile_picture(b.id, Some("2-abc.png")).await.unwrap(), None);
            assert_eq!(store.replace_profile_picture(b.id, Some("2-def.png")).await.unwrap().as_deref(), Some("2-abc.png"));
            assert_eq!(store.profile_pictures().await.unwrap(), ["2-def.png"]);
            let b2 = store.user_by_id(b.id).await.unwrap().unwrap();
            assert_eq!(b2.password_hash, "new-hash");
            assert!(b2.is_admin);
            assert_eq!(b2.profile_picture.as_deref(), Some("2-def.png"));

            store.create_session("s", b.id, crate::store::unix_now() + 60).await.unwrap();
            store.delete_user(b.id).await.unwrap();
            assert!(store.user_by_id(b.id).await.unwrap().is_none());
            assert!(store.session_user("s").await.unwrap().is_none(), "sessions go with the account");
            assert!(matches!(store.delete_user(b.id).await, Err(StoreError::NotFound)));
            assert!(store.user_by_id(a.id).await.unwrap().is_some());
        }
    }

    store_test! {
        async fn the_last_active_admin_stays_an_active_admin(store) {
            let a = store.create_user(&admin_named("Alice", "k1")).await.unwrap();
            let b = store.create_user(&admin_named("Bob", "k2")).await.unwrap();
            let c = store.create_user(&new_user("Carol", "k3")).await.unwrap();
            assert!(a.is_admin && b.is_admin && !c.is_admin);

            store.set_active(a.id, false).await.unwrap();
            assert!(matches!(store.set_active(b.id, false).await, Err(StoreError::LastAdmin)));
            assert!(matches!(store.set_admin(b.id, false).await, Err(StoreError::LastAdmin)));
            assert!(matches!(store.delete_user(b.id).await, Err(StoreError::LastAdmin)));
            let b2 = store.user_by_id(b.id).await.unwrap().unwrap();
            assert!(b2.is_admin && b2.is_active);
            assert_eq!(b2.token_version, b.token_version, "a refused disable revokes nothing");
            // Everyone else is free to go, a disabled admin included.
            store.set_active(c.id, false).await.unwrap();
            store.delete_user(a.id).await.unwrap();
            store.delete_user(c.id).await.unwrap();
            assert!(matches!(store.set_active(999, false).await, Err(StoreError::NotFound)));
            // Enabling and promoting are never refused; with two admins again, one may step down.
            store.set_admin(b.id, true).await.unwrap();
            let d = store.create_user(&admin_named("Dave", "k4")).await.unwrap();
            store.set_admin(b.id, false).await.unwrap();
            assert!(matches!(store.set_admin(d.id, false).await, Err(StoreError::LastAdmin)));
        }
    }

    store_test! {
        async fn dj_names_fold_case_the_same_on_every_backend(store) {
            // SQL lower() folds only ASCII in SQLite and follows the locale in Postgres.
            let a = store.create_user(&new_user("DJ Ölaf", "k1")).await.unwrap();
            assert_eq!(store.user_by_dj_name("dj ölaf").await.unwrap().map(|u| u.id), Some(a.id));
            assert_eq!(store.user_by_login("DJ ÖLAF").await.unwrap().map(|u| u.id), Some(a.id));
            let mut dup = new_user("dj ÖLAF", "k2");
            dup.email = "other@example.org".into();
            assert!(matches!(store.create_user(&dup).await, Err(StoreError::Conflict("dj_name"))));
            assert!(store.create_user(&new_user("DJ Olaf", "k3")).await.is_ok(), "Ö and O differ");
        }
    }

    store_test! {
        async fn nul_characters_are_refused_alike_on_every_backend(store) {
            // Postgres rejects NUL in text with an encoding error; SQLite would store it.
            store.create_user(&new_user("Alice", "k1")).await.unwrap();
            assert_eq!(store.user_by_login("ali\0ce").await.unwrap(), None);
            assert_eq!(store.user_by_login("alice\0@example.org").await.unwrap(), None);
            assert_eq!(store.user_by_dj_name("Alice\0").await.unwrap(), None);
            assert_eq!(store.user_by_stream_key("k1\0").await.unwrap(), None);
            let mut bad = new_user("Bob", "k2");
            bad.email = "bob\0@example.org".into();
            assert!(matches!(store.create_user(&bad).await, Err(StoreError::Invalid("email"))));
            let a = store.user_by_login("alice").await.unwrap().unwrap();
            assert!(matches!(store.set_stream_key(a.id, "k\0").await, Err(StoreError::Invalid("stream_key"))));
            assert!(store.save_queue_snapshot("{\"a\":\"\0\"}").await.is_err());
            assert_eq!(store.list_users().await.unwrap().len(), 1);
        }
    }

    store_test! {
        async fn start_up_rewrites_dj_name_keys_the_migration_filled_with_lower(store) {
            let a = store.create_user(&new_user("DJ Ölaf", "k1")).await.unwrap();
            let b = store.create_user(&new_user("Bob", "k2")).await.unwrap();
            // What migration 0002's `lower(dj_name)` leaves behind on SQLite.
            sqlx::query("UPDATE users SET dj_name_key = $1 WHERE id = $2")
                .bind("dj Ölaf")
                .bind(a.id)
                .execute(&store.pool)
                .await
                .unwrap();
            assert_eq!(store.user_by_dj_name("DJ ÖLAF").await.unwrap(), None);
            assert_eq!(store.refresh_dj_name_keys().await.unwrap(), 1);
            assert_eq!(store.user_by_dj_name("DJ ÖLAF").await.unwrap().map(|u| u.id), Some(a.id));
            assert_eq!(store.refresh_dj_name_keys().await.unwrap(), 0);
            assert_eq!(store.user_by_dj_name("bob").await.unwrap().map(|u| u.id), Some(b.id));
        }
    }

    store_test! {
        async fn dj_names_are_unique_up_to_look_alikes(store) {
            store.create_user(&new_user("Alice", "k1")).await.unwrap();
            for (n, name) in ["ALICE", "\u{0410}LICE", "\u{03B1}lice", "a1ice", "ａｌｉｃｅ"].into_iter().enumerate() {
                let mut dup = new_user(name, &format!("k{}", n + 10));
                dup.email = format!("other{n}@example.org");
                assert!(matches!(store.create_user(&dup).await, Err(StoreError::Conflict("dj_name"))), "{name:?}");
            }
            let b = store.create_user(&new_user("Bob", "k2")).await.unwrap();
            let rename = |name: &str| Profile { dj_name: name.into(), email: "bob@example.org".into(), timezone: "UTC".into() };
            // Cyrillic small palochka passes for an l.
            let r = store.update_profile(b.id, &rename("A\u{04CF}ice")).await;
            assert!(matches!(r, Err(StoreError::Conflict("dj_name"))), "{r:?}");
            store.update_profile(b.id, &rename("B0b")).await.unwrap();
        }
    }

    store_test! {
        async fn start_up_fills_skeletons_and_leaves_old_look_alikes_be(store) {
            let a = store.create_user(&new_user("Alice", "k1")).await.unwrap();
            let b = store.create_user(&new_user("Bob", "k2")).await.unwrap();
            // Rows from before the skeleton column; one of them a look-alike of another.
            let c = store.create_user(&new_user("Carol", "k3")).await.unwrap();
            for (id, name) in [(a.id, "Alice"), (b.id, "Bob"), (c.id, "\u{0430}lice")] {
                sqlx::query("UPDATE users SET dj_name = $1, dj_name_key = $2, dj_name_skeleton = NULL WHERE id = $3")
                    .bind(name)
                    .bind(dj_name_key(name))
                    .bind(id)
                    .execute(&store.pool)
                    .await
                    .unwrap();
            }
            assert_eq!(store.refresh_dj_name_keys().await.unwrap(), 2, "the look-alike keeps no skeleton");
            let mut dup = new_user("B\u{03BF}b", "k4");
            dup.email = "other@example.org".into();
            assert!(matches!(store.create_user(&dup).await, Err(StoreError::Conflict("dj_name"))), "backfilled");
            assert!(store.user_by_id(c.id).await.unwrap().is_some());
        }
    }

    store_test! {
        async fn concurrent_picture_replacements_each_hand_back_a_different_file(store) {
            let a = store.create_user(&new_user("Alice", "k1")).await.unwrap();
            let files: Vec<String> = (0..8).map(|i| format!("{}-{i:016x}.png", a.id)).collect();
            let mut tasks = tokio::task::JoinSet::new();
            for file in files.clone() {
                let store = store.clone();
                tasks.spawn(async move { store.replace_profile_picture(a.id, Some(&file)).await.unwrap() });
            }
            let mut handed_back: Vec<Option<String>> = tasks.join_all().await;
            // Each file but the one kept is handed back once (to be deleted), and the first
            // replacement found none.
            handed_back.push(store.user_by_id(a.id).await.unwrap().unwrap().profile_picture);
            handed_back.sort();
            let mut expected: Vec<Option<String>> = files.into_iter().map(Some).collect();
            expected.push(None);
            expected.sort();
            assert_eq!(handed_back, expected);
        }
    }
}
