//! Issue 10's account and exposure findings (items 4, 9, 10, 15), each as the attack that
//! worked before.

use serde_json::{Value, json};

use crate::harness::{Options, PASSWORD, Server};
use crate::web::Browser;

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Options that let one test sign up many accounts from loopback.
fn many_signups() -> Options {
    Options { config: Some("[limits]\nsignup_attempts_per_minute = 1000\n".into()), ..Options::default() }
}

#[tokio::test]
async fn look_alike_dj_names_are_refused_by_sign_up_rename_and_the_cli() {
    let server = Server::start(many_signups());
    server.add_user("Alice", false);
    server.add_user("Bob", false);
    let client = reqwest::Client::new();
    let signup = |name: &str, n: usize| {
        client.post(server.url("/api/v1/users/signup")).json(&json!({
            "dj_name": name, "email": format!("someone{n}@example.org"), "password": PASSWORD
        }))
    };

    // Invisible and direction-changing characters make a name that reads as another.
    let invisible = ["alice\u{200B}", "al\u{200D}ice", "\u{202E}ecila", "al\u{2066}ice\u{2069}", "\u{FEFF}alice"];
    for (n, name) in invisible.iter().enumerate() {
        let (status, body) = send(signup(name, n)).await;
        assert_eq!(status, 400, "{name:?} was accepted: {body}");
        assert!(body["detail"].as_str().unwrap().contains("invisible"), "{body}");
    }
    // Fullwidth, Greek and Cyrillic letters, digits that pass for letters.
    let look_alikes = ["ＡＬＩＣＥ", "ΑLICE", "\u{0430}lice", "a1ice", "AL\u{0399}CE"];
    for (n, name) in look_alikes.iter().enumerate() {
        let (status, body) = send(signup(name, 10 + n)).await;
        assert_eq!(status, 409, "{name:?} was accepted: {body}");
        assert!(body["detail"].as_str().unwrap().contains("looks like"), "{body}");
    }
    // The sign-up page shares the rules.
    let browser = Browser::new(&server);
    assert_eq!(browser.sign_up("\u{0410}lice").await, reqwest::StatusCode::CONFLICT);
    assert_eq!(browser.sign_up("Alice\u{202E}").await, reqwest::StatusCode::BAD_REQUEST);
    // Compatibility forms are stored in their plain form (NFKC).
    let (status, body) = send(signup("ＤＪ　Ｃａｒｏｌ", 20)).await;
    assert_eq!((status, body["dj_name"].as_str()), (201, Some("DJ Carol")), "{body}");

    // Renaming over the API (the settings page shares the code) is held to the same rules.
    let bob = server.token("bob").await;
    let rename =
        |name: &str| client.patch(server.url("/api/v1/users/me")).bearer_auth(&bob).json(&json!({ "dj_name": name }));
    assert_eq!(send(rename("\u{0410}LICE")).await.0, 409);
    assert_eq!(send(rename("Bob\u{200B}")).await.0, 400);
    let (status, body) = send(rename("Ｂｏｂｂｙ")).await;
    assert_eq!((status, body["dj_name"].as_str()), (200, Some("Bobby")), "{body}");
    // Keeping one's own name (or a look-alike of it) is not a conflict with oneself.
    assert_eq!(send(rename("B0bby")).await.0, 200);

    // So is the operator's CLI.
    let add = |name: &str| server.cli(&["user", "add", "--dj-name", name, "--email", "cli@example.org"]);
    let out = add("ａｌｉｃｅ");
    assert!(!out.status.success(), "the CLI added a look-alike");
    assert!(String::from_utf8_lossy(&out.stderr).contains("looks like"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = add("alice\u{200B}");
    assert!(!out.status.success(), "the CLI added an invisible character");
    let out = server.cli(&["user", "list", "--json"]);
    let users: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = users.as_array().unwrap().iter().filter_map(|u| u["dj_name"].as_str()).collect();
    assert_eq!(names, ["Alice", "B0bby", "DJ Carol"]);
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// The files in the pictures dir, sorted.
fn picture_files(server: &Server) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(server.data_dir.join("pictures"))
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test]
async fn parallel_picture_uploads_leave_one_file_orphans_are_swept_and_uploads_are_limited() {
    let server = Server::start(Options::default());
    let browser = Browser::new(&server);
    assert_eq!(browser.sign_up("Ada").await, reqwest::StatusCode::SEE_OTHER);
    let csrf = browser.csrf("/settings").await;
    let upload = || async {
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .part("picture", reqwest::multipart::Part::bytes(PNG).file_name("me.png").mime_str("image/png").unwrap());
        browser.client.post(server.url("/settings/picture")).multipart(form).send().await.unwrap().status().as_u16()
    };
    let statuses = futures_util::future::join_all((0..8).map(|_| upload())).await;
    assert_eq!(statuses, [303; 8]);
    let referenced = || async {
        let me = server.get_json_as("/api/v1/users/me", &server.token("ada").await).await;
        me["profile_picture"].as_str().expect("a picture").trim_start_matches("/pictures/").to_owned()
    };
    assert_eq!(picture_files(&server), [referenced().await], "8 parallel uploads");

    // Ten a minute per account, then 429 (two more fit).
    assert_eq!([upload().await, upload().await], [303, 303]);
    assert_eq!(upload().await, 429);
    assert_eq!(picture_files(&server), [referenced().await]);

    // What a crash between writing and referencing leaves behind goes at the next start.
    let kept = referenced().await;
    let dir = server.data_dir.join("pictures");
    for stray in ["1-0123456789abcdef.png", "7-fedcba9876543210.jpg", ".upload-0123456789abcdef"] {
        std::fs::write(dir.join(stray), PNG).unwrap();
    }
    let server = server.restart();
    server.wait_for_log("http listening on").await;
    assert_eq!(picture_files(&server), std::slice::from_ref(&kept));
    let resp = reqwest::get(server.url(&format!("/pictures/{kept}"))).await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// The address a log line `<prefix><address>` announced.
fn announced_addr(server: &Server, prefix: &str) -> String {
    let logs = server.logs();
    let start = logs.find(prefix).unwrap_or_else(|| panic!("no {prefix:?} in the log")) + prefix.len();
    logs[start..].split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn the_public_status_and_metrics_hold_no_paths_keys_or_error_texts_and_metrics_can_be_closed() {
    // A destination that refuses connections (an error text) and a program recording (a path).
    let config = "destinations = [\"rtmp://127.0.0.1:9/live/destination-secret-key\"]\nrecord_program = true\n";
    let server = Server::start(Options { config: Some(config.into()), ..Options::default() });
    server.add_user("Organiser", true);
    server.add_user("Ada", false);
    let admin = server.token("organiser").await;
    let client = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut req = client.get(server.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    let full: Value = loop {
        let status: Value = serde_json::from_str(&get("/api/v1/status", Some(&admin)).await.1).unwrap();
        if status["destinations"][0]["last_error"].is_string() && status["recording"]["program"]["path"].is_string() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "no destination error or recording: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let error = full["destinations"][0]["last_error"].as_str().unwrap().to_owned();
    let path = full["recording"]["program"]["path"].as_str().unwrap().to_owned();
    let data_dir = server.data_dir.display().to_string();
    assert!(full["destinations"][0]["url"].as_str().unwrap().contains("127.0.0.1:9"), "{full}");

    let secrets = [error.as_str(), path.as_str(), data_dir.as_str(), "127.0.0.1:9", "destination-secret-key", "****"];
    let ada = server.token("ada").await;
    for (who, token) in [("anonymous", None), ("a DJ", Some(ada.as_str()))] {
        let (status, body) = get("/api/v1/status", token).await;
        assert_eq!(status, 200);
        for secret in secrets {
            assert!(!body.contains(secret), "{who} sees {secret:?} in the status: {body}");
        }
        let public: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(public["destinations"][0]["name"], "destination-1");
        assert_eq!(public["destinations"][0]["state"], full["destinations"][0]["state"]);
        assert_eq!(public["recording"]["program"], true, "{public}");
        assert_eq!(public["program"]["source"], "slate");
    }
    // An admin's browser session sees what an admin's token does.
    let organiser = Browser::new(&server);
    organiser.log_in("organiser", PASSWORD).await;
    let (status, body) = organiser.get("/api/v1/status").await;
    assert_eq!(status, 200);
    assert!(body.contains(&path) && body.contains(&error), "{body}");

    let (status, metrics) = get("/metrics", None).await;
    assert_eq!(status, 200);
    for secret in secrets {
        assert!(!metrics.contains(secret), "/metrics shows {secret:?}: {metrics}");
    }

    // Closed metrics: a token, and a listener of their own.
    let token = "metrics-token-0123456789abcdef";
    let config = format!("metrics_token = \"{token}\"\nmetrics_listen = \"127.0.0.1:0\"\n");
    let closed = Server::start(Options { config: Some(config), ..Options::default() });
    closed.wait_for_log("metrics listening on ").await;
    let metrics_url = format!("http://{}/metrics", announced_addr(&closed, "metrics listening on "));
    let on_main = reqwest::get(closed.url("/metrics")).await.unwrap().status().as_u16();
    assert_eq!(on_main, 404, "metrics stay off the public listener");
    for (bearer, expected) in [(None, 401), (Some("wrong-token-0123456789abcdef"), 401), (Some(token), 200)] {
        let mut req = client.get(&metrics_url);
        if let Some(bearer) = bearer {
            req = req.bearer_auth(bearer);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), expected, "{bearer:?}");
        if expected == 200 {
            assert!(resp.text().await.unwrap().contains("motherstream_publishers"));
        }
    }
    // A token alone protects /metrics where it is.
    let config = format!("metrics_token = \"{token}\"\n");
    let tokened = Server::start(Options { config: Some(config), ..Options::default() });
    tokened.wait_for_log("http listening on").await;
    assert_eq!(reqwest::get(tokened.url("/metrics")).await.unwrap().status().as_u16(), 401);
    let resp = client.get(tokened.url("/metrics")).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}
