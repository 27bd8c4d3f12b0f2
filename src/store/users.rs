//! Accounts: the `users` table.

use sqlx::FromRow;

use super::{Store, StoreError, conflict_field, unix_now};

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
}

/// A `users` row as stored: flags are 0/1 integers (see the migrations).
#[derive(FromRow)]
struct UserRow {
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
        }
    }
}

/// What it takes to create an account; inputs are expected to be validated already.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub dj_name: String,
    pub email: String,
    pub password_hash: String,
    pub stream_key: String,
    /// Ask for an admin. The very first account is an admin regardless.
    pub is_admin: bool,
}

const COLUMNS: &str = "id, dj_name, email, password_hash, timezone, stream_key, is_active, \
                       is_admin, profile_picture, created_at";

impl Store {
    /// Creates an account. The first account ever created becomes an admin.
    pub async fn create_user(&self, new: &NewUser) -> Result<User, StoreError> {
        let sql = format!(
            "INSERT INTO users (dj_name, email, password_hash, stream_key, is_admin, created_at) \
             SELECT $1, $2, $3, $4, \
                    CASE WHEN $5 = 1 OR NOT EXISTS (SELECT 1 FROM users) THEN 1 ELSE 0 END, $6 \
             RETURNING {COLUMNS}"
        );
        sqlx::query_as::<_, UserRow>(&sql)
            .bind(&new.dj_name)
            .bind(new.email.to_lowercase())
            .bind(&new.password_hash)
            .bind(&new.stream_key)
            .bind(i64::from(new.is_admin))
            .bind(unix_now())
            .fetch_one(&self.pool)
            .await
            .map(User::from)
            .map_err(map_conflict)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.user_where("id = $1", id).await
    }

    pub async fn user_by_stream_key(&self, key: &str) -> Result<Option<User>, StoreError> {
        self.user_where("stream_key = $1", key.to_owned()).await
    }

    /// Looks a user up by DJ name, case-insensitively.
    pub async fn user_by_dj_name(&self, dj_name: &str) -> Result<Option<User>, StoreError> {
        self.user_where("lower(dj_name) = lower($1)", dj_name.to_owned()).await
    }

    /// Looks a user up by what they type in a login form: their email or DJ name.
    pub async fn user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        let login = login.trim();
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
        let done = sqlx::query("UPDATE users SET stream_key = $1 WHERE id = $2")
            .bind(key)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_conflict)?;
        found(done.rows_affected())
    }

    /// Enables or disables an account; a disabled account's key is refused on publish.
    pub async fn set_active(&self, id: i64, active: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET is_active = $1 WHERE id = $2")
            .bind(i64::from(active))
            .bind(id)
            .execute(&self.pool)
            .await?;
        found(done.rows_affected())
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

fn map_conflict(err: sqlx::Error) -> StoreError {
    match conflict_field(&err) {
        Some(field) => StoreError::Conflict(field),
        None => StoreError::Database(err),
    }
}

fn found(rows: u64) -> Result<(), StoreError> {
    if rows == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_store;

    fn new_user(name: &str, key: &str) -> NewUser {
        NewUser {
            dj_name: name.into(),
            email: format!("{}@Example.org", name.to_lowercase()),
            password_hash: "hash".into(),
            stream_key: key.into(),
            is_admin: false,
        }
    }

    #[tokio::test]
    async fn first_user_is_admin_and_later_ones_are_not() {
        let (store, _dir) = temp_store().await;
        let a = store.create_user(&new_user("Alice", "k1")).await.unwrap();
        let b = store.create_user(&new_user("Bob", "k2")).await.unwrap();
        assert!(a.is_admin);
        assert!(!b.is_admin);
        assert!(a.is_active);
        assert_eq!(a.email, "alice@example.org", "emails are stored lower-case");
        assert_eq!(a.timezone, "UTC");
    }

    #[tokio::test]
    async fn unique_fields_report_which_one_conflicts() {
        let (store, _dir) = temp_store().await;
        store.create_user(&new_user("Alice", "k1")).await.unwrap();
        let mut dup_name = new_user("ALICE", "k2");
        dup_name.email = "other@example.org".into();
        assert!(matches!(store.create_user(&dup_name).await, Err(StoreError::Conflict("dj_name"))));
        let mut dup_email = new_user("Carol", "k3");
        dup_email.email = "ALICE@example.org".into();
        assert!(matches!(store.create_user(&dup_email).await, Err(StoreError::Conflict("email"))));
        assert!(matches!(store.create_user(&new_user("Dave", "k1")).await, Err(StoreError::Conflict("stream_key"))));
    }

    #[tokio::test]
    async fn lookups_key_rotation_and_disable() {
        let (store, _dir) = temp_store().await;
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
        assert_eq!(store.list_users().await.unwrap().len(), 1);
    }
}
