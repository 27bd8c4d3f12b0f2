//! Load client (used by `scripts/bench-fanout.sh`): holds many RTMP players on one thread,
//! reads and discards what they receive, and reports how fast each one receives.
//!
//! ```text
//! rtmp_swarm --server 127.0.0.1:1935 --play program/live --players 1000 \
//!            --duration 30 --warmup 10 [--ramp 200] [--out result.json]
//! ```
//!
//! Each player does the real handshake and `connect`/`createStream`/`play` (the crate's own
//! client), then stops decoding: it only counts bytes and acknowledges them as a player
//! must (Acknowledgement every window), so the swarm costs a fraction of the server it
//! loads. `--ramp` players connect per second. The result: players started, alive at the
//! end, and the per-player receive rate (kbit/s) over the measured window, min/p10/median.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use motherstream::rtmp::client_io::RtmpClient;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The window we acknowledge at, as the players of nginx-rtmp and ours announce it.
const ACK_WINDOW: u64 = 2_500_000;

thread_local! {
    /// Every player reads into this one buffer: they run on one thread and discard the bytes.
    static DISCARD: RefCell<Vec<u8>> = RefCell::new(vec![0; 256 * 1024]);
}

#[derive(Default)]
struct Player {
    bytes: u64,
    bytes_at_warmup: Option<u64>,
    alive: bool,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == &format!("--{name}")).and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: f64) -> f64 {
    arg(args, name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("--{name}: not a number")))
}

/// An Acknowledgement message (type 3) on chunk stream 2 with a full header.
fn acknowledgement(sequence: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = 0x02;
    m[6] = 4; // length (3 bytes) = 4
    m[7] = 3; // type id
    m[12..].copy_from_slice(&sequence.to_be_bytes());
    m
}

async fn play(server: String, app: String, stream: String, me: Rc<RefCell<Player>>) -> Res<()> {
    let client = RtmpClient::play(&server, &app, &stream).await?;
    let mut socket: TcpStream = client.into_io();
    me.borrow_mut().alive = true;
    let mut acked: u64 = 0;
    loop {
        socket.readable().await?;
        let read = DISCARD.with_borrow_mut(|buf| socket.try_read(buf));
        let n = match read {
            Ok(0) => return Err("server closed the connection".into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        };
        let total = {
            let mut p = me.borrow_mut();
            p.bytes += n as u64;
            p.bytes
        };
        if total - acked >= ACK_WINDOW {
            acked = total;
            socket.write_all(&acknowledgement(total as u32)).await?;
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let server = arg(&args, "server").unwrap_or_else(|| "127.0.0.1:1935".into());
    let target = arg(&args, "play").unwrap_or_else(|| "program/live".into());
    let (app, stream) = target.split_once('/').ok_or("--play app/stream")?;
    let count = num(&args, "players", 100.0) as usize;
    let ramp = num(&args, "ramp", 200.0).max(1.0);
    let warmup = Duration::from_secs_f64(num(&args, "warmup", 10.0));
    let duration = Duration::from_secs_f64(num(&args, "duration", 30.0));

    let local = tokio::task::LocalSet::new();
    let players: Vec<Rc<RefCell<Player>>> = (0..count).map(|_| Rc::default()).collect();
    let errors = Rc::new(RefCell::new(std::collections::BTreeMap::<String, usize>::new()));
    let t0 = Instant::now();
    local
        .run_until(async {
            for (i, me) in players.iter().enumerate() {
                let (server, app, stream, me, errors) =
                    (server.clone(), app.to_owned(), stream.to_owned(), me.clone(), errors.clone());
                tokio::task::spawn_local(async move {
                    if let Err(e) = play(server, app, stream, me.clone()).await {
                        me.borrow_mut().alive = false;
                        *errors.borrow_mut().entry(e.to_string()).or_default() += 1;
                    }
                });
                // Connect at the ramp rate so the server sees a crowd arrive, not a SYN flood.
                let due = t0 + Duration::from_secs_f64((i + 1) as f64 / ramp);
                tokio::time::sleep_until(due.into()).await;
            }
            tokio::time::sleep(warmup).await;
            for p in &players {
                let mut p = p.borrow_mut();
                p.bytes_at_warmup = Some(p.bytes);
            }
            tokio::time::sleep(duration).await;
        })
        .await;

    let secs = duration.as_secs_f64();
    let mut rates: Vec<f64> = players
        .iter()
        .map(|p| {
            let p = p.borrow();
            (p.bytes - p.bytes_at_warmup.unwrap_or(p.bytes)) as f64 * 8.0 / 1000.0 / secs
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let alive = players.iter().filter(|p| p.borrow().alive).count();
    let result = serde_json::json!({
        "players": count,
        "alive": alive,
        "kbps_min": percentile(&rates, 0.0),
        "kbps_p10": percentile(&rates, 0.1),
        "kbps_median": percentile(&rates, 0.5),
        "total_mbps": rates.iter().sum::<f64>() / 1000.0,
        "errors": *errors.borrow(),
    });
    println!("{result}");
    if let Some(out) = arg(&args, "out") {
        std::fs::write(out, result.to_string())?;
    }
    Ok(())
}
