//! Issue 10's findings, each as the attack that worked before: revoked tokens, the last
//! admin, redirects, headers, file modes, reset links, the first admin.

use serde_json::{Value, json};

use crate::harness::{Options, PASSWORD, Server};
use crate::web::Browser;

/// `GET /api/v1/users/me` with a token: its status.
async fn me_status(server: &Server, token: &str) -> u16 {
    let resp = reqwest::Client::new().get(server.url("/api/v1/users/me")).bearer_auth(token).send().await.unwrap();
    resp.status().as_u16()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn api_tokens_die_with_a_password_change_a_reset_a_disable_and_a_delete() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    for name in ["Ada", "Bea", "Cy", "Dee"] {
        server.add_user(name, false);
    }
    let client = reqwest::Client::new();
    let admin = server.token("organiser").await;

    // A password change ends every token, the one that made the change included.
    let ada_thief = server.token("ada").await;
    let ada = server.token("ada").await;
    let (status, _) = send(
        client
            .patch(server.url("/api/v1/users/me/password"))
            .bearer_auth(&ada)
            .json(&json!({ "current_password": PASSWORD, "new_password": "a brand new secret" })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me_status(&server, &ada_thief).await, 401, "a stolen token survived the password change");
    assert_eq!(me_status(&server, &ada).await, 401);
    assert_eq!(server.login_status("ada", "a brand new secret").await, 200);

    // A reset through an emailed link (logged: no SMTP here) ends them too.
    let bea_thief = server.token("bea").await;
    assert_eq!(server.post("/api/v1/password-recovery/bea@example.org", None, None).await.0, 200);
    server.wait_for_log("password reset link for Bea").await;
    let logs = server.logs();
    let link = logs.split_whitespace().find(|w| w.contains("/password-reset/")).expect("a reset link in the log");
    let token = link.rsplit('/').next().unwrap().trim_end_matches(|c: char| !c.is_ascii_hexdigit());
    let (status, body) = server
        .post("/api/v1/reset-password/", None, Some(json!({ "token": token, "new_password": "reset secret" })))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me_status(&server, &bea_thief).await, 401, "a stolen token survived the reset");

    // A disable ends them, and enabling the account again does not bring them back.
    let cy = server.token("cy").await;
    assert_eq!(server.post("/api/v1/users/Cy/disable", Some(&admin), None).await.0, 200);
    assert_ne!(me_status(&server, &cy).await, 200);
    let out = server.cli(&["user", "enable", "Cy"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(me_status(&server, &cy).await, 401, "a disable did not revoke the token");
    assert_eq!(me_status(&server, &server.token("cy").await).await, 200);

    // A deleted account's token is refused.
    let dee = server.token("dee").await;
    let (status, _) = send(
        client.delete(server.url("/api/v1/users/me")).bearer_auth(&dee).json(&json!({ "current_password": PASSWORD })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me_status(&server, &dee).await, 401);
    assert_eq!(me_status(&server, &admin).await, 200, "other users' tokens live on");
}

#[tokio::test]
async fn changing_the_email_or_deleting_over_the_api_needs_the_current_password() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    server.add_user("Ada", false);
    let client = reqwest::Client::new();
    let ada = server.token("ada").await;
    let patch = |body: Value| client.patch(server.url("/api/v1/users/me")).bearer_auth(&ada).json(&body);

    let (status, body) = send(patch(json!({ "email": "thief@evil.example" }))).await;
    assert_eq!(status, 400, "an email change without the password: {body}");
    let (status, _) =
        send(patch(json!({ "email": "thief@evil.example", "current_password": "not the password" }))).await;
    assert_eq!(status, 400);
    assert_eq!(server.get_json_as("/api/v1/users/me", &ada).await["email"], "ada@example.org");
    // Other fields need no password, and neither does sending the email unchanged.
    let (status, body) = send(patch(json!({ "timezone": "Europe/Paris", "email": "ADA@example.org" }))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(patch(json!({ "email": "ada@new.example", "current_password": PASSWORD }))).await;
    assert_eq!((status, body["email"].as_str()), (200, Some("ada@new.example")));

    let delete = |body: Option<Value>| {
        let req = client.delete(server.url("/api/v1/users/me")).bearer_auth(&ada);
        match body {
            Some(b) => req.json(&b),
            None => req,
        }
    };
    assert_eq!(send(delete(None)).await.0, 400, "a delete without the password");
    assert_eq!(send(delete(Some(json!({ "current_password": "not the password" })))).await.0, 400);
    assert_eq!(me_status(&server, &ada).await, 200);
    assert_eq!(send(delete(Some(json!({ "current_password": PASSWORD })))).await.0, 200);
    assert_eq!(me_status(&server, &ada).await, 401);
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_disabled_demoted_or_deleted_by_any_route() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    server.add_user("Ada", false);
    let admin = server.token("organiser").await;

    // The API: disabling oneself, the only admin.
    let (status, body) = server.post("/api/v1/users/Organiser/disable", Some(&admin), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("admin"), "{body}");
    assert_eq!(me_status(&server, &admin).await, 200, "still active, token alive");

    // The CLI.
    let out = server.cli(&["user", "disable", "Organiser"]);
    assert!(!out.status.success(), "the CLI disabled the last admin");
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(me_status(&server, &admin).await, 200);

    // With a second admin, one of them may go; then the other is the last one again.
    let out = server.cli(&["user", "add", "--dj-name", "Second", "--email", "second@example.org", "--admin"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, body) = server.post("/api/v1/users/Second/disable", Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.post("/api/v1/users/Organiser/disable", Some(&admin), None).await;
    assert_eq!(status, 403, "a disabled admin does not count");
    let confirm = json!({ "current_password": PASSWORD });
    let (status, _) =
        send(reqwest::Client::new().delete(server.url("/api/v1/users/me")).bearer_auth(&admin).json(&confirm)).await;
    assert_eq!(status, 403);
    assert_eq!(me_status(&server, &admin).await, 200);
}

#[tokio::test]
async fn after_login_only_plain_local_paths_are_followed() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    let browser = Browser::new(&server);
    assert_eq!(browser.sign_up("Ada").await, reqwest::StatusCode::SEE_OTHER);
    // Logged in, `/login?next=` redirects at once.
    let (status, location) = browser.get_location("/login?next=/sets").await;
    assert_eq!((status.as_u16(), location.as_deref()), (303, Some("/sets")));
    for bad in
        ["/%09/evil.example", "/%0a/evil.example", "/%0d%0aSet-Cookie:%20x=1", "//evil.example", "/%5Cevil.example"]
    {
        let (status, location) = browser.get_location(&format!("/login?next={bad}")).await;
        assert_eq!((status.as_u16(), location.as_deref()), (303, Some("/dashboard")), "next={bad}");
    }
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers().get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// The `ms_csrf` value a response sets, if it sets one.
fn csrf_set_by(resp: &reqwest::Response) -> Option<String> {
    resp.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        v.strip_prefix("ms_csrf=").map(|rest| rest.split(';').next().unwrap_or("").to_owned())
    })
}

#[tokio::test]
async fn pages_overlays_and_secrets_carry_security_headers_and_login_rotates_the_csrf_cookie() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // Pages: self-only CSP, never framed, no referrer to other sites, never cached.
    let login = client.get(server.url("/login")).send().await.unwrap();
    let csp = header(&login, "content-security-policy");
    for part in ["default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"] {
        assert!(csp.contains(part), "{part} missing from {csp:?}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains('*'), "{csp}");
    assert_eq!(header(&login, "x-frame-options"), "DENY");
    assert_eq!(header(&login, "referrer-policy"), "same-origin");
    assert_eq!(header(&login, "cache-control"), "no-store");
    assert_eq!(header(&login, "x-content-type-options"), "nosniff");

    // Overlays: the same policy, but any site (OBS, a stream page) may frame them.
    let overlay = client.get(server.url("/overlay/now?scale=2")).send().await.unwrap();
    let csp = header(&overlay, "content-security-policy").to_owned();
    assert!(csp.contains("default-src 'self'") && !csp.contains("frame-ancestors"), "{csp}");
    assert_eq!(header(&overlay, "x-frame-options"), "");
    let body = overlay.text().await.unwrap();
    assert!(body.contains(r#"data-scale="2.0""#), "the scale survives without an inline style: {body}");

    // API answers that carry a token or a stream key are not stored by any cache.
    let token = client
        .post(server.url("/api/v1/login/access-token"))
        .form(&[("username", "organiser"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(header(&token, "cache-control"), "no-store");
    let bearer: Value = token.json().await.unwrap();
    let bearer = bearer["access_token"].as_str().unwrap();
    for path in ["/api/v1/users/me", "/api/v1/users/", "/block-toggle"] {
        let resp = client.get(server.url(path)).bearer_auth(bearer).send().await.unwrap();
        assert_eq!((path, header(&resp, "cache-control")), (path, "no-store"));
    }

    // The CSRF cookie changes at login: a value planted before (by a sibling subdomain, a
    // shared computer) does not carry over into the session.
    let page = client.get(server.url("/login")).send().await.unwrap();
    let before = csrf_set_by(&page).expect("a CSRF cookie on the first visit");
    let resp = client
        .post(server.url("/login"))
        .header("cookie", format!("ms_csrf={before}"))
        .form(&[("csrf", before.as_str()), ("username", "organiser"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let after = csrf_set_by(&resp).expect("a new CSRF cookie at login");
    assert_ne!(after, before);
    assert_eq!(after.len(), 64);
}

#[tokio::test]
async fn pages_have_no_inline_scripts_or_styles_for_the_policy_to_block() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    let browser = Browser::new(&server);
    let anonymous = [
        "/",
        "/login",
        "/signup",
        "/password-reset",
        "/overlay/now",
        "/overlay/clock",
        "/queue-list",
        "/watch",
        "/embed",
    ];
    let member = ["/dashboard", "/sets", "/settings", "/admin", "/overlays"];
    for path in anonymous {
        assert_no_inline_code(&browser, path).await;
    }
    assert_eq!(browser.log_in("organiser", PASSWORD).await.0, reqwest::StatusCode::SEE_OTHER);
    for path in member {
        assert_no_inline_code(&browser, path).await;
    }
}

async fn assert_no_inline_code(browser: &Browser, path: &str) {
    let (status, html) = browser.get(path).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{path}");
    assert!(!html.contains(" style=\""), "{path} has a style attribute");
    assert!(!html.contains("<style"), "{path} has a style element");
    for script in html.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap_or("");
        assert!(tag.contains("src=\"/assets/"), "{path} has an inline script: <script{tag}>");
    }
}

/// Every file and directory under `dir` whose mode lets the group or others in.
fn open_to_others(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        // The harness's own files (config, Postgres URL marker).
        if entry.file_name().to_string_lossy().starts_with("test-") {
            continue;
        }
        let mode = entry.metadata().unwrap().permissions().mode();
        if mode & 0o077 != 0 {
            found.push(format!("{} {:o}", entry.path().display(), mode & 0o777));
        }
        if entry.file_type().unwrap().is_dir() {
            found.extend(open_to_others(&entry.path()));
        }
    }
    found
}

#[tokio::test]
async fn the_data_dir_and_its_files_are_private_to_the_server_user() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // What earlier versions left behind: a 0755 directory and a 0644 database.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    // (The database is a file only on SQLite; the harness may run the server on Postgres.)
    if std::env::var("MOTHERSTREAM_TEST_SERVER_DB").as_deref() != Ok("postgres") {
        std::fs::write(data.join("motherstream.db"), b"").unwrap();
        std::fs::set_permissions(data.join("motherstream.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let server = Server::start_in(&data, Options::default());
    server.add_user("Organiser", true);
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "data dir mode {mode:o}");
    assert!(data.join("jwt_secret").exists());
    assert_eq!(open_to_others(&data), Vec::<String>::new());
}

/// Asks for a reset link over the API as if the site were reached as `host`.
async fn request_reset_as(server: &Server, host: &str, email: &str) {
    let resp = reqwest::Client::new()
        .post(server.url(&format!("/api/v1/password-recovery/{email}")))
        .header("host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn reset_links_without_smtp_use_public_url_and_say_when_it_is_missing() {
    let config = "public_url = \"https://radio.example.org/\"\n".to_owned();
    let server = Server::start(Options { config: Some(config), ..Options::default() });
    server.add_user("Organiser", true);
    request_reset_as(&server, "evil.example", "organiser@example.org").await;
    server.wait_for_log("password reset link for Organiser").await;
    let logs = server.logs();
    assert!(logs.contains("https://radio.example.org/password-reset/"), "{logs}");
    assert!(!logs.contains("evil.example/password-reset"), "{logs}");

    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    request_reset_as(&server, "radio.example.net", "organiser@example.org").await;
    server.wait_for_log("password reset link for Organiser").await;
    // The operator forwards a logged link by hand: they must know where its address came from.
    server.wait_for_log("public_url is not set").await;
    let line = server.logs().lines().find(|l| l.contains("public_url is not set")).unwrap().to_owned();
    assert!(line.contains("Host header"), "{line}");
}

#[tokio::test]
async fn the_first_admin_comes_from_the_operator_not_from_the_first_sign_up() {
    let server = Server::start(Options::default());
    // A fresh server tells the operator, in its log only, how to make the first admin.
    server.wait_for_log("/setup/").await;
    let logs = server.logs();
    let link = logs.split_whitespace().find(|w| w.contains("/setup/")).unwrap().to_owned();
    let path = link[link.find("/setup/").unwrap()..].trim_end_matches(|c: char| !c.is_ascii_hexdigit()).to_owned();

    // The first public sign-up is a DJ like any other.
    let (status, early) = send(
        reqwest::Client::new()
            .post(server.url("/api/v1/users/signup"))
            .json(&json!({ "dj_name": "Early", "email": "early@example.org", "password": PASSWORD })),
    )
    .await;
    assert_eq!((status, early["is_superuser"].as_bool()), (201, Some(false)), "{early}");
    let early = server.token("early").await;
    assert_eq!(server.post("/api/v1/queue/skip", Some(&early), None).await.0, 403);

    // The setup link makes one admin, once.
    let operator = Browser::new(&server);
    let fields = [("dj_name", "Boss"), ("email", "boss@example.org"), ("password", PASSWORD)];
    let (status, body, location) = operator.submit(&path, &path, &fields).await;
    assert_eq!((status.as_u16(), location.as_deref()), (303, Some("/admin")), "{body}");
    assert_eq!(operator.get("/admin").await.0, reqwest::StatusCode::OK);
    let boss = server.token("boss").await;
    assert_eq!(server.get_json_as("/api/v1/users/me", &boss).await["is_superuser"], true);

    let latecomer = Browser::new(&server);
    assert_eq!(latecomer.get(&path).await.0, reqwest::StatusCode::NOT_FOUND, "the link works once");
    let other = [("dj_name", "Thief"), ("email", "thief@example.org"), ("password", PASSWORD)];
    let (status, _, _) = latecomer.submit("/signup", &path, &other).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert_eq!(server.login_status("thief", PASSWORD).await, 400);
    // A wrong token never works.
    let wrong = format!("/setup/{}", "0".repeat(64));
    assert_eq!(latecomer.get(&wrong).await.0, reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_server_with_an_admin_prints_no_setup_link() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    let server = server.restart();
    server.wait_for_log("http listening on").await;
    assert!(!server.logs().contains("/setup/"), "{}", server.logs());
}
