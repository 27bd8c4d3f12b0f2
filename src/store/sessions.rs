//! Browser sessions: `sessions` rows keyed by the SHA-256 of the cookie's token.

use super::users::{COLUMNS, UserRow};
use super::{Store, StoreError, User, unix_now};

impl Store {
    /// Records a new session for `user_id`, valid until `expires_at` (Unix seconds).
    /// Expired sessions are swept on the way, so the table holds live sessions only.
    pub async fn create_session(&self, token_hash: &str, user_id: i64, expires_at: i64) -> Result<(), StoreError> {
        let now = unix_now();
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user of an unexpired session, whatever their `is_active` (callers decide).
    pub async fn session_user(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        let columns = COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {columns} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2"
        );
        let row =
            sqlx::query_as::<_, UserRow>(&sql).bind(token_hash).bind(unix_now()).fetch_optional(&self.pool).await?;
        Ok(row.map(User::from))
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }

    /// Ends every session of a user except `keep` (the one changing the password).
    pub async fn delete_sessions_of(&self, user_id: i64, keep: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::{store_test, test_user};

    store_test! {
        async fn sessions_resolve_expire_and_end(store) {
            let user = test_user(&store, "Ada").await;
            let now = crate::store::unix_now();
            store.create_session("live", user.id, now + 3600).await.unwrap();
            store.create_session("other", user.id, now + 3600).await.unwrap();
            store.create_session("stale", user.id, now - 1).await.unwrap();
            assert_eq!(store.session_user("live").await.unwrap().map(|u| u.id), Some(user.id));
            assert_eq!(store.session_user("stale").await.unwrap(), None, "expired sessions do not count");
            assert_eq!(store.session_user("nope").await.unwrap(), None);

            store.delete_sessions_of(user.id, Some("live")).await.unwrap();
            assert!(store.session_user("live").await.unwrap().is_some(), "the kept session survives");
            assert!(store.session_user("other").await.unwrap().is_none());
            store.delete_session("live").await.unwrap();
            assert!(store.session_user("live").await.unwrap().is_none());
        }
    }
}
