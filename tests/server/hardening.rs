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
