//! Password reset links: `password_resets` rows keyed by the SHA-256 of the link's token.
//! A link is single use and short-lived, and only the newest one sent to a user works.

use super::{Store, StoreError, unix_now};

impl Store {
    /// Records a reset token for `user_id`, valid until `expires_at` (Unix seconds). The
    /// user's older links stop working, and used or expired rows are swept on the way.
    pub async fn create_password_reset(
        &self,
        token_hash: &str,
        user_id: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let now = unix_now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM password_resets WHERE user_id = $1 OR expires_at <= $2 OR used_at IS NOT NULL")
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user of a reset token that is still usable (unused, unexpired); nothing changes.
    pub async fn password_reset_user(&self, token_hash: &str) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT user_id FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id,)| id))
    }

    /// Uses up a reset token: returns its user if it was still usable, and marks it used.
    /// Check and mark are one statement, so of two concurrent uses only one gets the user.
    pub async fn use_password_reset(&self, token_hash: &str) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE password_resets SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
        )
        .bind(unix_now())
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id,)| id))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::{store_test, test_user};
    use crate::store::unix_now;

    store_test! {
        async fn a_reset_link_works_once(store) {
            let ada = test_user(&store, "Ada").await;
            store.create_password_reset("t1", ada.id, unix_now() + 3600).await.unwrap();
            assert_eq!(store.password_reset_user("t1").await.unwrap(), Some(ada.id));
            assert_eq!(store.password_reset_user("t1").await.unwrap(), Some(ada.id), "looking does not use it");
            assert_eq!(store.use_password_reset("t1").await.unwrap(), Some(ada.id));
            assert_eq!(store.use_password_reset("t1").await.unwrap(), None, "single use");
            assert_eq!(store.password_reset_user("t1").await.unwrap(), None);
            assert_eq!(store.use_password_reset("unknown").await.unwrap(), None);
        }
    }

    store_test! {
        async fn expired_and_superseded_links_do_not_work(store) {
            let ada = test_user(&store, "Ada").await;
            let bob = test_user(&store, "Bob").await;
            store.create_password_reset("stale", ada.id, unix_now() - 1).await.unwrap();
            assert_eq!(store.password_reset_user("stale").await.unwrap(), None);
            assert_eq!(store.use_password_reset("stale").await.unwrap(), None);

            store.create_password_reset("old", ada.id, unix_now() + 3600).await.unwrap();
            store.create_password_reset("bob", bob.id, unix_now() + 3600).await.unwrap();
            store.create_password_reset("new", ada.id, unix_now() + 3600).await.unwrap();
            assert_eq!(store.use_password_reset("old").await.unwrap(), None, "a newer link replaces it");
            assert_eq!(store.use_password_reset("bob").await.unwrap(), Some(bob.id), "other users keep theirs");
            assert_eq!(store.use_password_reset("new").await.unwrap(), Some(ada.id));
        }
    }

    store_test! {
        async fn concurrent_uses_of_one_link_let_only_one_through(store) {
            let ada = test_user(&store, "Ada").await;
            for round in 0..5 {
                let token = format!("t{round}");
                store.create_password_reset(&token, ada.id, unix_now() + 3600).await.unwrap();
                let uses = (0..4).map(|_| {
                    let (store, token) = (store.clone(), token.clone());
                    tokio::spawn(async move { store.use_password_reset(&token).await.unwrap() })
                });
                let mut winners = 0;
                for task in uses.collect::<Vec<_>>() {
                    winners += usize::from(task.await.unwrap().is_some());
                }
                assert_eq!(winners, 1, "round {round}");
            }
        }
    }
}
