//! Benchmark: how fast a queue change reaches many live pages and overlays, and what they
//! cost the server.
//!
//! ```text
//! sse_fanout --http 127.0.0.1:8080 --login admin --password PW --pid SERVER_PID
//!            [--subscribers 500] [--rounds 20] [--idle 30]
//! ```
//!
//! Opens `--subscribers` connections to `/api/v1/events`, then `--rounds` times changes the
//! swap interval as an admin (a queue change every overlay shows) and records, for every
//! subscriber, the time from the request to the `queue` event carrying the new value. Then
//! it keeps the subscribers connected for `--idle` seconds and reads the server's CPU time
//! and RSS from /proc (`--pid`). Prints one JSON object.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Barrier, watch};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn args() -> HashMap<String, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    raw.chunks(2).filter_map(|p| Some((p.first()?.trim_start_matches("--").to_owned(), p.get(1)?.clone()))).collect()
}

/// One subscriber: reports how long after `round.1` it saw `"swap_interval":round.0`.
async fn subscribe(
    http: String,
    mut round: watch::Receiver<(u64, Instant)>,
    ready: Arc<Barrier>,
    delays: tokio::sync::mpsc::UnboundedSender<Duration>,
) -> Res<()> {
    let mut stream = TcpStream::connect(&http).await?;
    stream.write_all(format!("GET /api/v1/events HTTP/1.1\r\nHost: {http}\r\n\r\n").as_bytes()).await?;
    ready.wait().await;
    let mut seen = String::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        let (value, since) = *round.borrow_and_update();
        if value != 0 && seen.contains(&format!("\"swap_interval\":{value}")) {
            let _ = delays.send(since.elapsed());
            seen.clear();
        }
        if seen.len() > 64 * 1024 {
            seen.drain(..seen.len() - 4096);
        }
    }
}

fn cpu_and_rss(pid: &str) -> Res<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((ticks / 100.0, rss_kib))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Res<()> {
    let a = args();
    let http = a.get("http").cloned().unwrap_or_else(|| "127.0.0.1:8080".into());
    let n: usize = a.get("subscribers").and_then(|v| v.parse().ok()).unwrap_or(500);
    let rounds: u64 = a.get("rounds").and_then(|v| v.parse().ok()).unwrap_or(20);
    let idle: u64 = a.get("idle").and_then(|v| v.parse().ok()).unwrap_or(30);
    let pid = a.get("pid").cloned().ok_or("--pid is required")?;
    let client = reqwest::Client::new();
    let login = [
        ("username", a.get("login").cloned().unwrap_or_default()),
        ("password", a.get("password").cloned().unwrap_or_default()),
    ];
    let token: serde_json::Value =
        client.post(format!("http://{http}/api/v1/login/access-token")).form(&login).send().await?.json().await?;
    let token = token["access_token"].as_str().ok_or("login failed")?.to_owned();

    let (before_cpu, before_rss) = cpu_and_rss(&pid)?;
    let (round_tx, round_rx) = watch::channel((0u64, Instant::now()));
    let ready = Arc::new(Barrier::new(n + 1));
    let (delay_tx, mut delay_rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..n {
        tokio::spawn(subscribe(http.clone(), round_rx.clone(), ready.clone(), delay_tx.clone()));
    }
    ready.wait().await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut delays = Vec::new();
    for r in 0..rounds {
        let minutes = 100 + r;
        round_tx.send((minutes * 60, Instant::now()))?;
        client
            .post(format!("http://{http}/api/v1/queue/swap-interval"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "seconds": minutes * 60 }))
            .send()
            .await?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = 0;
        while got < n && Instant::now() < deadline {
            if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(100), delay_rx.recv()).await {
                delays.push(d);
                got += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (cpu0, _) = cpu_and_rss(&pid)?;
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let (cpu1, rss) = cpu_and_rss(&pid)?;
    delays.sort();
    let out = serde_json::json!({
        "subscribers": n,
        "rounds": rounds,
        "deliveries": delays.len(),
        "expected_deliveries": n as u64 * rounds,
        "change_to_event_ms": { "p50": percentile(&delays, 0.5), "p99": percentile(&delays, 0.99), "max": percentile(&delays, 1.0) },
        "idle_cpu_percent": (cpu1 - cpu0) / idle as f64 * 100.0,
        "rss_kib_before": before_rss,
        "rss_kib_with_subscribers": rss,
        "cpu_seconds_total_during_run": cpu1 - before_cpu,
    });
    println!("{out}");
    Ok(())
}
