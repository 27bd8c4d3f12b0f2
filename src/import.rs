//! `motherstream import-seed`: the accounts of the original motherstream (its Postgres
//! `users` table) become accounts here, with their password hashes (argon2 PHC strings, as
//! argon2-cffi wrote them, verified as they are) and their stream keys unchanged, so DJs log
//! in with their old password and stream without touching OBS.
//!
//! All or nothing: every problem (an account here with the same email, DJ name or stream key
//! but not the same account, a row we cannot use) is listed and nothing is written. Accounts
//! already imported are recognised (same email, DJ name and stream key) and left alone, so a
//! second run changes nothing.
//!
//! The original also kept its queue in `QUEUE.json` (a JSON list of user ids as strings;
//! early versions listed stream keys). `--queue` reads it and says who was waiting, but
//! imports nothing from it: here a DJ joins the queue by publishing, and the queue kept
//! across restarts is our own. The original had nothing else in that file (its block
//! toggle lived in memory only).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::auth::{is_well_formed_key, normalize_dj_name, validate_email};
use crate::calendar::validate_timezone;
use crate::settings::redact_url;
use crate::store::{ImportedAccount, Store, User, dj_name_skeleton};

/// Largest `QUEUE.json` read: the original wrote a few short strings per queued DJ.
const MAX_QUEUE_FILE_BYTES: u64 = 1024 * 1024;

/// Connecting to the original's database gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A collective's accounts, with a wide margin; more means this is not that database.
const MAX_ACCOUNTS: i64 = 100_000;

/// One row of the original's `users` table. Columns it may lack are `None`/defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedAccount {
    /// The original's id, as text (it is an integer or a UUID depending on the version).
    pub id: String,
    pub email: Option<String>,
    pub dj_name: Option<String>,
    pub stream_key: Option<String>,
    pub hashed_password: Option<String>,
    pub timezone: Option<String>,
    pub is_active: bool,
    pub is_admin: bool,
    pub has_picture: bool,
}

/// What an import does (or would do, on a dry run).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// `DJ name <email>` of each account to create, with its flags.
    pub create: Vec<String>,
    pub already_here: usize,
    /// Why nothing can be imported; empty when the import can go ahead.
    pub problems: Vec<String>,
    /// Accounts created with UTC because the original's time zone was missing or unusable.
    pub utc_fallbacks: Vec<String>,
    pub pictures_left: usize,
    /// True when, after the import, no account here is an admin.
    pub no_admin: bool,
}

/// Reads the original's accounts.
pub async fn read_seed(url: &str) -> Result<Vec<SeedAccount>, String> {
    let shown = redact_url(url);
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url))
        .await
        .map_err(|_| format!("--from: no answer from {shown} within {}s", CONNECT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("--from: cannot connect to {shown}: {e}"))?;
    let columns: Vec<(String,)> = sqlx::query_as(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = 'users'",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| format!("--from: reading the tables of {shown}: {e}"))?;
    let has = |name: &str| columns.iter().any(|(c,)| c == name);
    if columns.is_empty() {
        return Err(format!("--from: {shown} has no `users` table: is it the original motherstream's database?"));
    }
    if let Some(missing) = ["id", "email", "dj_name", "stream_key", "hashed_password"].into_iter().find(|c| !has(c)) {
        return Err(format!(
            "--from: the `users` table of {shown} has no `{missing}` column: is it the original motherstream's database?"
        ));
    }
    let timezone = if has("timezone") { "timezone::text" } else { "NULL::text" };
    let active = if has("is_active") { "COALESCE(is_active, TRUE)" } else { "TRUE" };
    let admin = match (has("is_superuser"), has("is_admin")) {
        (true, _) => "COALESCE(is_superuser, FALSE)",
        (false, true) => "COALESCE(is_admin, FALSE)",
        _ => "FALSE",
    };
    let picture = if has("profile_picture") { "COALESCE(profile_picture, '') <> ''" } else { "FALSE" };
    let sql = format!(
        "SELECT id::text, email::text, dj_name::text, stream_key::text, hashed_password::text, {timezone}, \
         {active}, {admin}, {picture} FROM users ORDER BY users.id LIMIT {}",
        MAX_ACCOUNTS + 1
    );
    type Row =
        (String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, bool, bool, bool);
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| format!("--from: reading users from {shown}: {e}"))?;
    // Best effort: the rows are read; a failed goodbye changes nothing.
    let _ = conn.close().await;
    if rows.len() as i64 > MAX_ACCOUNTS {
        return Err(format!(
            "--from: {shown} has more than {MAX_ACCOUNTS} users: is it the original motherstream's database?"
        ));
    }
    Ok(rows
        .into_iter()
        .map(|(id, email, dj_name, stream_key, hashed_password, timezone, is_active, is_admin, has_picture)| {
            SeedAccount { id, email, dj_name, stream_key, hashed_password, timezone, is_active, is_admin, has_picture }
        })
        .collect())
}

/// Decides, against the accounts `here`, what importing `seed` does.
pub fn plan(seed: &[SeedAccount], here: &[User]) -> (Plan, Vec<ImportedAccount>) {
    let mut plan = Plan::default();
    let mut accounts = Vec::new();
    // Which seed row first claimed each email, DJ name and stream key.
    let mut claimed: HashMap<(&str, String), &str> = HashMap::new();
    for row in seed {
        let who = format!("original account {}", row.id);
        let (Some(email), Some(dj_name), Some(key), Some(hash)) =
            (row.email.as_deref(), row.dj_name.as_deref(), row.stream_key.as_deref(), row.hashed_password.as_deref())
        else {
            plan.problems.push(format!("{who}: email, dj_name, stream_key or hashed_password is empty"));
            continue;
        };
        let label = format!("{dj_name} <{email}>");
        let email_key = email.to_lowercase();
        // Names are compared as they would be stored: look-alikes are the same name.
        let name_key = dj_name_skeleton(dj_name);
        let mut row_problems = Vec::new();
        for (field, value) in [("email", &email_key), ("DJ name", &name_key), ("stream key", &key.to_owned())] {
            if let Some(first) = claimed.insert((field, value.clone()), &row.id) {
                row_problems.push(format!("same {field} as original account {first}"));
            }
        }
        let dj_name = match normalize_dj_name(dj_name) {
            Ok(name) => name,
            Err(e) => {
                row_problems.push(e);
                dj_name.to_owned()
            }
        };
        if let Err(e) = validate_email(email) {
            row_problems.push(e);
        }
        if !is_well_formed_key(key) {
            row_problems.push(
                "its stream key has characters our RTMP ingest refuses (allowed: letters, digits, _ and -; at most 128)"
                    .into(),
            );
        }
        if !PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2")) {
            row_problems.push("its password hash is not an argon2 PHC string".into());
        }
        let same_email = here.iter().find(|u| u.email == email_key);
        let same_name = here.iter().find(|u| dj_name_skeleton(&u.dj_name) == name_key);
        let same_key = here.iter().find(|u| u.stream_key == key);
        if let (Some(a), Some(b), Some(c)) = (same_email, same_name, same_key)
            && a.id == b.id
            && b.id == c.id
        {
            plan.already_here += 1;
            continue;
        }
        for (field, found) in [("email", same_email), ("DJ name", same_name), ("stream key", same_key)] {
            if let Some(u) = found {
                row_problems
                    .push(format!("{field} already used here by account {} ({} <{}>)", u.id, u.dj_name, u.email));
            }
        }
        if !row_problems.is_empty() {
            plan.problems.extend(row_problems.into_iter().map(|p| format!("{who} ({label}): {p}")));
            continue;
        }
        let timezone = match row.timezone.as_deref().filter(|tz| validate_timezone(tz).is_ok()) {
            Some(tz) => tz.to_owned(),
            None => {
                plan.utc_fallbacks.push(label.clone());
                "UTC".to_owned()
            }
        };
        let mut flags = Vec::new();
        if row.is_admin {
            flags.push("admin");
        }
        if !row.is_active {
            flags.push("disabled");
        }
        plan.create.push(if flags.is_empty() { label } else { format!("{label} ({})", flags.join(", ")) });
        plan.pictures_left += usize::from(row.has_picture);
        accounts.push(ImportedAccount {
            dj_name,
            email: email.to_owned(),
            password_hash: hash.to_owned(),
            timezone,
            stream_key: key.to_owned(),
            is_active: row.is_active,
            is_admin: row.is_admin,
        });
    }
    if !plan.problems.is_empty() {
        plan.create.clear();
        plan.utc_fallbacks.clear();
        plan.pictures_left = 0;
        accounts.clear();
    }
    plan.no_admin = !here.iter().any(|u| u.is_admin) && !accounts.iter().any(|a| a.is_admin);
    (plan, accounts)
}

/// The entries of the original's `QUEUE.json`, as text.
pub fn read_queue_file(path: &Path) -> Result<Vec<String>, String> {
    let shown = path.display();
    let len = std::fs::metadata(path).map_err(|e| format!("--queue {shown}: {e}"))?.len();
    if len > MAX_QUEUE_FILE_BYTES {
        return Err(format!(
            "--queue {shown}: larger than {MAX_QUEUE_FILE_BYTES} bytes: is it the original's QUEUE.json?"
        ));
    }
    let text = std::fs::read(path).map_err(|e| format!("--queue {shown}: {e}"))?;
    parse_queue(&text).map_err(|e| format!("--queue {shown}: {e}"))
}

fn parse_queue(text: &[u8]) -> Result<Vec<String>, String> {
    let not_it = "not a JSON list of user ids or stream keys (the original's QUEUE.json)";
    let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| format!("{not_it}: {e}"))?;
    let serde_json::Value::Array(entries) = value else { return Err(not_it.to_owned()) };
    entries
        .into_iter()
        .map(|entry| match entry {
            serde_json::Value::String(s) => Ok(s),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            _ => Err(not_it.to_owned()),
        })
        .collect()
}

/// What the original's queue held, in words. Entries are user ids, or stream keys in early
/// versions; a stream key is never printed.
pub fn describe_queue(entries: &[String], seed: &[SeedAccount]) -> Vec<String> {
    if entries.is_empty() {
        return vec!["QUEUE.json: the original's queue was empty; nothing to carry over".into()];
    }
    let names: Vec<String> = entries
        .iter()
        .map(|entry| {
            let account = seed
                .iter()
                .find(|a| a.id == *entry)
                .or_else(|| seed.iter().find(|a| a.stream_key.as_ref() == Some(entry)));
            match account {
                Some(a) => a.dj_name.clone().unwrap_or_else(|| format!("original account {}", a.id)),
                None if entry.chars().all(|c| c.is_ascii_digit()) => format!("unknown original account {entry}"),
                None => "an unknown stream key".to_owned(),
            }
        })
        .collect();
    vec![
        format!("QUEUE.json: {} DJ(s) were queued in the original, in order: {}", names.len(), names.join(", ")),
        "QUEUE.json: not imported: here a DJ joins the queue by publishing (with the same stream key, OBS unchanged), \
         and the queue survives restarts in our own database"
            .into(),
    ]
}

/// Runs the import (or its dry run) and returns what to print; an `Err` lists the problems.
/// `queue` is the original's `QUEUE.json`, reported on, never imported.
pub async fn run(store: &Store, from: &str, queue: Option<&Path>, dry_run: bool) -> Result<Vec<String>, Vec<String>> {
    // Read first: a wrong path stops everything before anything is written.
    let queue = queue.map(read_queue_file).transpose().map_err(|e| vec![e])?;
    let seed = read_seed(from).await.map_err(|e| vec![e])?;
    let queue_lines = queue.map(|entries| describe_queue(&entries, &seed)).unwrap_or_default();
    let plan = store.import_accounts(!dry_run, |here| plan(&seed, here)).await.map_err(|e| vec![e.to_string()])?;
    if !plan.problems.is_empty() {
        let mut lines = plan.problems;
        lines.push(format!("nothing imported: {} problem(s) above", lines.len()));
        return Err(lines);
    }
    let mut lines = Vec::new();
    if plan.create.is_empty() {
        lines.push(format!("nothing to do: all {} accounts of the original are already here", plan.already_here));
        lines.extend(queue_lines);
        return Ok(lines);
    }
    let verb = if dry_run { "would import" } else { "imported" };
    lines.push(format!("{verb} {} account(s), {} already here:", plan.create.len(), plan.already_here));
    lines.extend(plan.create.iter().map(|a| format!("  {a}")));
    if !plan.utc_fallbacks.is_empty() {
        lines
            .push(format!("time zone UTC (the original's was missing or unusable): {}", plan.utc_fallbacks.join(", ")));
    }
    if plan.pictures_left > 0 {
        lines.push(format!(
            "{} profile picture(s) not copied: the files stayed with the original; DJs upload them again",
            plan.pictures_left
        ));
    }
    if plan.no_admin {
        lines.push("no account here is an admin: make one with `motherstream user add --admin`".into());
    }
    lines.extend(queue_lines);
    if dry_run {
        lines.push("dry run: nothing written".into());
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str =
        "$argon2id$v=19$m=65536,t=3,p=4$zgyCj7Ozhm81FIXvdffD4A$wxEle8ton+1/QaJ1hmtlK/Uqtichwu/mYQleKkj0aJY";

    fn seed(id: u32, name: &str, key: &str) -> SeedAccount {
        SeedAccount {
            id: id.to_string(),
            email: Some(format!("{}@example.org", name.to_lowercase())),
            dj_name: Some(name.into()),
            stream_key: Some(key.into()),
            hashed_password: Some(HASH.into()),
            timezone: Some("Europe/Paris".into()),
            is_active: true,
            is_admin: false,
            has_picture: false,
        }
    }

    fn here(id: i64, name: &str, key: &str, admin: bool) -> User {
        User {
            id,
            dj_name: name.into(),
            email: format!("{}@example.org", name.to_lowercase()),
            password_hash: HASH.into(),
            timezone: "UTC".into(),
            stream_key: key.into(),
            is_active: true,
            is_admin: admin,
            profile_picture: None,
            created_at: 0,
            token_version: 0,
            up_next_email: false,
            discord_user_id: None,
        }
    }

    #[test]
    fn accounts_already_here_are_left_alone_and_new_ones_created() {
        let (plan, accounts) = plan(&[seed(1, "Ada", "k1"), seed(2, "Bo", "k2")], &[here(7, "ADA", "k1", true)]);
        assert_eq!(plan.problems, Vec::<String>::new());
        assert_eq!((plan.already_here, plan.create.as_slice()), (1, &["Bo <bo@example.org>".to_owned()][..]));
        assert_eq!(accounts.len(), 1);
        assert_eq!((accounts[0].stream_key.as_str(), accounts[0].timezone.as_str()), ("k2", "Europe/Paris"));
        assert!(!plan.no_admin);
    }

    #[test]
    fn every_problem_is_listed_and_nothing_is_imported() {
        let mut no_hash = seed(3, "Cy", "k3");
        no_hash.hashed_password = Some("$2b$12$bcryptbcryptbcryptbcryu".into());
        let mut spaced_key = seed(4, "Dee", "k 4");
        spaced_key.dj_name = Some("Dee".into());
        let mut empty = seed(5, "Eve", "k5");
        empty.email = None;
        let (plan, accounts) = plan(
            &[seed(1, "Ada", "k1"), seed(2, "ada", "k2"), no_hash, spaced_key, empty, seed(6, "Fay", "taken")],
            &[here(9, "Gus", "taken", true)],
        );
        assert!(accounts.is_empty() && plan.create.is_empty());
        let expected = [
            "original account 2 (ada <ada@example.org>): same email as original account 1",
            "original account 2 (ada <ada@example.org>): same DJ name as original account 1",
            "original account 3 (Cy <cy@example.org>): its password hash is not an argon2 PHC string",
            "original account 4 (Dee <dee@example.org>): its stream key has characters our RTMP ingest refuses",
            "original account 5: email, dj_name, stream_key or hashed_password is empty",
            "original account 6 (Fay <fay@example.org>): stream key already used here by account 9 (Gus <gus@example.org>)",
        ];
        assert_eq!(plan.problems.len(), expected.len(), "{:#?}", plan.problems);
        for (problem, expected) in plan.problems.iter().zip(expected) {
            assert!(problem.starts_with(expected), "{problem}");
        }
    }

    #[test]
    fn the_originals_queue_file_is_described_not_imported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("QUEUE.json");
        // As the original's `_write_persistent_state` writes it: user ids as strings.
        std::fs::write(&path, r#"["2", "1", "9"]"#).unwrap();
        let entries = read_queue_file(&path).unwrap();
        assert_eq!(entries, ["2", "1", "9"]);
        let seed = [seed(1, "Ada", "k1"), seed(2, "Bo", "secret-key-2")];
        let lines = describe_queue(&entries, &seed);
        assert_eq!(
            lines[0],
            "QUEUE.json: 3 DJ(s) were queued in the original, in order: Bo, Ada, unknown original account 9"
        );
        assert!(lines[1].starts_with("QUEUE.json: not imported: here a DJ joins the queue by publishing"));
        // Early versions listed stream keys, which are never printed.
        let lines = describe_queue(&parse_queue(br#"["secret-key-2", "who-knows"]"#).unwrap(), &seed);
        assert_eq!(lines[0], "QUEUE.json: 2 DJ(s) were queued in the original, in order: Bo, an unknown stream key");
        assert!(!lines.concat().contains("secret-key-2") && !lines.concat().contains("who-knows"));
        assert_eq!(
            describe_queue(&parse_queue(b"[]").unwrap(), &seed),
            ["QUEUE.json: the original's queue was empty; nothing to carry over"]
        );
        assert_eq!(parse_queue(b"[3, 4]").unwrap(), ["3", "4"]);
        for bad in [&b"{\"queue\": []}"[..], b"[[1]]", b"not json", b""] {
            assert!(parse_queue(bad).unwrap_err().starts_with("not a JSON list"), "{}", String::from_utf8_lossy(bad));
        }
        let missing = read_queue_file(&dir.path().join("nope.json")).unwrap_err();
        assert!(missing.starts_with("--queue ") && missing.contains("nope.json"), "{missing}");
    }

    #[test]
    fn an_unusable_time_zone_becomes_utc_and_a_missing_admin_is_noticed() {
        let mut odd = seed(1, "Ada", "k1");
        odd.timezone = Some("../../etc".into());
        let (plan, accounts) = plan(&[odd], &[]);
        assert_eq!(accounts[0].timezone, "UTC");
        assert_eq!(plan.utc_fallbacks, ["Ada <ada@example.org>"]);
        assert!(plan.no_admin, "nobody would be an admin");
    }

    #[test]
    fn look_alike_and_invisible_names_are_refused_and_compatibility_forms_normalised() {
        let (plan_, accounts) = plan(
            &[seed(1, "Ａda", "k1"), seed(2, "\u{0410}da", "k2"), seed(3, "B\u{200B}o", "k3"), seed(4, "Ｇus", "k4")],
            &[here(9, "Gus", "k9", true)],
        );
        assert!(accounts.is_empty(), "{accounts:?}");
        let expected = [
            "original account 2 (\u{0410}da <\u{0430}da@example.org>): same DJ name as original account 1",
            "original account 3 (B\u{200B}o <b\u{200B}o@example.org>): dj_name must not contain invisible",
            "original account 4 (Ｇus <ｇus@example.org>): DJ name already used here by account 9",
        ];
        assert_eq!(plan_.problems.len(), expected.len(), "{:#?}", plan_.problems);
        for (problem, expected) in plan_.problems.iter().zip(expected) {
            assert!(problem.starts_with(expected), "{problem}");
        }
        let (_, accounts) = plan(&[seed(1, "Ａda", "k1")], &[]);
        assert_eq!(accounts[0].dj_name, "Ada", "stored in its NFKC form");
    }
}
