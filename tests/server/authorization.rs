//! The authorisation table (issue 10, item 15): every route the router has, as every kind
//! of caller, against `docs/authorization.md`. The routes come from the code that builds
//! the router (`web::route_table`), so a new route without a row in the table fails here.
//!
//! `AUTHZ_TABLE_WRITE=1` rewrites the table from what the server answers; review the diff:
//! the table is the expectation, and a changed cell is a changed permission.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::{Options, PASSWORD, Server};

/// Callers in the order the table shows them.
const COLUMNS: [&str; 6] = ["anonymous", "DJ", "other DJ", "admin", "disabled", "deleted"];
/// The CSRF value every caller sends as cookie and form field, so that page forms reach
/// their authorisation check instead of stopping at the CSRF one.
const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/authorization.md");

/// Someone calling: a browser session and an API token, either possibly absent or stale.
#[derive(Default, Clone)]
struct Caller {
    session: Option<String>,
    token: Option<String>,
}

async fn log_in(server: &Server, login: &str) -> Caller {
    let session = server.page_session(login, CSRF).await;
    Caller { session: Some(session), token: Some(server.token(login).await) }
}

/// The concrete path a route template is tried with; a new placeholder needs a value here.
fn concrete(template: &str, ada_id: i64) -> String {
    let mut path = template.to_owned();
    let values: [(&str, String); 9] = [
        ("{token}", "0".repeat(64)),
        ("{file}", "1-0123456789abcdef.png".into()),
        ("{seconds}", "60".into()),
        ("{dj_name}", "Ada".into()),
        ("{id}", ada_id.to_string()),
        ("{user_id}", ada_id.to_string()),
        ("{email}", "nobody@example.org".into()),
        (
            "{name}",
            match template {
                "/assets/{name}" => "style.css".into(),
                "/overlay/{name}" => "clock".into(),
                _ => "nowhere".into(),
            },
        ),
        ("{action}", if template.starts_with("/admin/users/") { "disable".into() } else { "remove".into() }),
    ];
    for (placeholder, value) in values {
        path = path.replace(placeholder, &value);
    }
    assert!(!path.contains('{'), "no value for a placeholder of {template}: add one to `concrete`");
    path
}

/// What a call answers: its status, and for a redirect where to (without the query), as a
/// redirect to the login page and one after a success must not look alike.
async fn answer(client: &reqwest::Client, server: &Server, caller: &Caller, method: &Method, path: &str) -> String {
    let mut cookie = format!("ms_csrf={CSRF}");
    if let Some(session) = &caller.session {
        cookie.push_str(&format!("; ms_session={session}"));
    }
    let mut req = client.request(method.clone(), server.url(path)).header("cookie", cookie);
    if let Some(token) = &caller.token {
        req = req.bearer_auth(token);
    }
    if method != Method::GET {
        req = req.form(&[("csrf", CSRF)]);
    }
    // Only the status: `/program.flv` and `/api/v1/events` never end.
    let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    match resp.headers().get("location").and_then(|l| l.to_str().ok()) {
        Some(location) if resp.status().is_redirection() => {
            format!("{status} {}", location.split('?').next().unwrap_or_default())
        }
        _ => status.to_string(),
    }
}

/// The table in the doc: (method, path) → the statuses per column.
fn documented() -> BTreeMap<(String, String), Vec<String>> {
    let doc = std::fs::read_to_string(DOC).expect("docs/authorization.md");
    let mut rows = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() != 2 + COLUMNS.len() || !["GET", "POST", "PATCH", "DELETE"].contains(&cells[0]) {
            continue;
        }
        let path = cells[1].trim_matches('`').to_owned();
        let previous = rows.insert((cells[0].to_owned(), path), cells[2..].iter().map(|c| c.to_string()).collect());
        assert!(previous.is_none(), "two rows for {} {}", cells[0], cells[1]);
    }
    rows
}

fn write_table(actual: &BTreeMap<(String, String), Vec<String>>, order: &[(Method, &str)]) {
    let doc = std::fs::read_to_string(DOC).unwrap_or_default();
    let intro = doc.split("\n| method |").next().unwrap_or_default().trim_end().to_owned();
    let mut out =
        format!("{intro}\n\n| method | path | {} |\n|---|---|{}\n", COLUMNS.join(" | "), "---|".repeat(COLUMNS.len()));
    for (method, path) in order {
        let cells = &actual[&(method.to_string(), path.to_string())];
        out.push_str(&format!("| {method} | `{path}` | {} |\n", cells.join(" | ")));
    }
    std::fs::write(DOC, out).unwrap();
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_table_says() {
    let config = "[limits]\nlogin_attempts_per_minute = 1000\nsignup_attempts_per_minute = 1000\n";
    let server = Server::start(Options { config: Some(config.into()), ..Options::default() });
    server.add_user("Organiser", true);
    for name in ["Ada", "Bea", "Cy", "Dee"] {
        server.add_user(name, false);
    }
    let ada_id = server.get_json_as("/api/v1/users/me", &server.token("ada").await).await["id"].as_i64().unwrap();
    let mut callers: BTreeMap<&str, Caller> = BTreeMap::new();
    callers.insert("anonymous", Caller::default());
    for (column, login) in
        [("DJ", "ada"), ("other DJ", "bea"), ("admin", "organiser"), ("disabled", "cy"), ("deleted", "dee")]
    {
        callers.insert(column, log_in(&server, login).await);
    }
    // Their session and token were taken before; now Cy is disabled and Dee deletes herself.
    let out = server.cli(&["user", "disable", "Cy"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resp = reqwest::Client::new()
        .delete(server.url("/api/v1/users/me"))
        .bearer_auth(server.token("dee").await)
        .json(&json!({ "current_password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let routes = motherstream::web::route_table();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // The admin goes last (their successes change others: they disable Ada), and within
    // each caller logging out does (it ends the session the other rows use).
    let mut order: Vec<&(Method, &str)> = routes.iter().filter(|(_, p)| *p != "/logout").collect();
    order.extend(routes.iter().filter(|(_, p)| *p == "/logout"));
    let mut actual: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for column in ["anonymous", "DJ", "other DJ", "disabled", "deleted", "admin"] {
        let index = COLUMNS.iter().position(|c| *c == column).unwrap();
        for (method, template) in &order {
            let status = answer(&client, &server, &callers[column], method, &concrete(template, ada_id)).await;
            let cells = actual
                .entry((method.to_string(), template.to_string()))
                .or_insert_with(|| vec![String::new(); COLUMNS.len()]);
            cells[index] = status;
        }
    }

    if std::env::var_os("AUTHZ_TABLE_WRITE").is_some() {
        let order: Vec<(Method, &str)> = routes.iter().map(|(m, p)| (m.clone(), *p)).collect();
        write_table(&actual, &order);
        return;
    }
    let expected = documented();
    let mut wrong = Vec::new();
    for (route, statuses) in &actual {
        match expected.get(route) {
            None => wrong.push(format!("{} {}: no row in docs/authorization.md", route.0, route.1)),
            Some(want) if want != statuses => {
                for ((column, want), got) in COLUMNS.iter().zip(want).zip(statuses) {
                    if want != got {
                        wrong.push(format!("{} {} as {column}: {got}, the table says {want}", route.0, route.1));
                    }
                }
            }
            Some(_) => {}
        }
    }
    for route in expected.keys().filter(|r| !actual.contains_key(*r)) {
        wrong.push(format!("{} {}: in the table but not a route", route.0, route.1));
    }
    assert!(wrong.is_empty(), "{} differences:\n{}", wrong.len(), wrong.join("\n"));
}
