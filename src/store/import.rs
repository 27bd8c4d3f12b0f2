//! Accounts brought over from another database (`motherstream import-seed`): written in one
//! transaction, decided against the accounts already here as seen inside that transaction.

use super::users::{COLUMNS, UserRow, refuse_nul};
use super::{Backend, Store, StoreError, User, dj_name_key, unix_now};

/// An account to create as it was elsewhere: password hash and stream key kept as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedAccount {
    pub dj_name: String,
    pub email: String,
    pub password_hash: String,
    pub timezone: String,
    pub stream_key: String,
    pub is_active: bool,
    pub is_admin: bool,
}

impl Store {
    /// Shows `decide` every account here and creates the accounts it returns, all or none.
    /// Nothing is written when `write` is false. Account creation is serialised with sign-ups
    /// (as in [`Store::create_user`]) so the decision cannot go stale before the commit.
    pub async fn import_accounts<T>(
        &self,
        write: bool,
        decide: impl FnOnce(&[User]) -> (T, Vec<ImportedAccount>),
    ) -> Result<T, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        }
        let here: Vec<User> = sqlx::query_as::<_, UserRow>(&format!("SELECT {COLUMNS} FROM users ORDER BY id"))
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(User::from)
            .collect();
        let (report, accounts) = decide(&here);
        if !write || accounts.is_empty() {
            return Ok(report);
        }
        let now = unix_now();
        for account in &accounts {
            for (field, value) in [
                ("dj_name", &account.dj_name),
                ("email", &account.email),
                ("password_hash", &account.password_hash),
                ("timezone", &account.timezone),
                ("stream_key", &account.stream_key),
            ] {
                refuse_nul(field, value)?;
            }
            sqlx::query(
                "INSERT INTO users (dj_name, dj_name_key, dj_name_skeleton, email, password_hash, timezone, \
                 stream_key, is_active, is_admin, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&account.dj_name)
            .bind(dj_name_key(&account.dj_name))
            .bind(super::users::dj_name_skeleton(&account.dj_name))
            .bind(account.email.to_lowercase())
            .bind(&account.password_hash)
            .bind(&account.timezone)
            .bind(&account.stream_key)
            .bind(i64::from(account.is_active))
            .bind(i64::from(account.is_admin))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(super::users::map_conflict)?;
        }
        tx.commit().await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::store_test;

    fn account(name: &str, key: &str, admin: bool) -> ImportedAccount {
        ImportedAccount {
            dj_name: name.into(),
            email: format!("{}@Example.org", name),
            password_hash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA".into(),
            timezone: "Europe/Berlin".into(),
            stream_key: key.into(),
            is_active: !admin,
            is_admin: admin,
        }
    }

    store_test! {
        async fn imported_accounts_keep_their_fields_and_admin_flag(store) {
            let seen = store
                .import_accounts(true, |here| (here.len(), vec![account("Ada", "k-ada", false), account("Bo", "k.bo", true)]))
                .await
                .unwrap();
            assert_eq!(seen, 0);
            let ada = store.user_by_stream_key("k-ada").await.unwrap().unwrap();
            assert_eq!((ada.dj_name.as_str(), ada.email.as_str(), ada.timezone.as_str()), ("Ada", "ada@example.org", "Europe/Berlin"));
            assert!(ada.is_active && !ada.is_admin, "an imported first account is not made admin");
            assert_eq!(ada.password_hash, account("Ada", "", false).password_hash);
            let bo = store.user_by_dj_name("bo").await.unwrap().unwrap();
            assert!(!bo.is_active && bo.is_admin);
            assert_eq!(bo.stream_key, "k.bo", "kept as it was, whatever its format");
        }
    }

    store_test! {
        async fn a_failing_account_rolls_back_the_whole_import(store) {
            store.import_accounts(true, |_| ((), vec![account("Ada", "k1", false)])).await.unwrap();
            let same_name = ImportedAccount { email: "other@example.org".into(), ..account("ada", "k3", false) };
            let err = store
                .import_accounts(true, |_| ((), vec![account("Cy", "k2", false), same_name]))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict("dj_name")), "{err}");
            assert!(store.user_by_dj_name("Cy").await.unwrap().is_none(), "nothing of a failed import stays");
        }
    }

    store_test! {
        async fn nothing_is_written_on_a_dry_run(store) {
            store.import_accounts(false, |_| ((), vec![account("Ada", "k1", false)])).await.unwrap();
            assert!(store.list_users().await.unwrap().is_empty());
        }
    }
}
