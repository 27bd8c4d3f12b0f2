//! The soak run (not part of `cargo test`: `scripts/soak.sh [--minutes N]` runs it): eight
//! DJs of the matrix's encoders rotate for N minutes through random clean stops, dropped
//! connections (reconnecting within and after the grace period), slot expiries, admin
//! skips and kicks, while nginx-rtmp is the platform and is restarted at random, and RTMP
//! players join and leave. All on 127.0.0.1; every loop is bounded by the deadline.
//!
//! At the end it prints the platform's connections (must be restarts + 1), the largest
//! presentation gap per transition kind, the A/V offsets, the server's RSS and open files
//! sampled every 10 s (flat: the last part within 10 % of the first), and ffmpeg's decode
//! errors (none), and fails if any bar is missed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::analysis::{Report, Source, analyse};
use crate::encoders::{AUDIO_ONLY, FfmpegDj, X264_BFRAMES, X264_LONG_GOP, X264_ZEROLATENCY};
use crate::harness::require_tool;
use crate::matrix::Channel;
use crate::platforms::{Nginx, decode_errors, read_tags, require_nginx_rtmp};
use crate::program::{Collected, rtmp_player};

const GRACE_SECS: u64 = 3;
const DJS: usize = 8;
/// Open files may differ by this many between the first and last part of the run: the
/// connections of the DJs and players present at the time.
const FD_SLACK: u32 = 8;
/// Players that come and go, at most this many at once besides the reference player.
const MAX_PLAYERS: usize = 3;

/// What the soak did, with the program timestamp when it did it, to name the transitions
/// the reference player saw afterwards.
struct Action {
    kind: &'static str,
    program_ms: i64,
}

#[tokio::test]
#[ignore = "a long run: scripts/soak.sh"]
async fn soak() {
    if !require_tool("ffmpeg") || !require_nginx_rtmp() {
        return;
    }
    let minutes: f64 = std::env::var("MOTHERSTREAM_SOAK_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(30.0);
    let seed: u64 = std::env::var("MOTHERSTREAM_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(16);
    let run = Duration::from_secs_f64(minutes * 60.0);
    eprintln!("soak: {minutes} minutes, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let encoders = [X264_BFRAMES, X264_ZEROLATENCY, X264_LONG_GOP, AUDIO_ONLY];
    let mut fixtures = Vec::new();
    for e in encoders {
        fixtures.push(tokio::task::spawn_blocking(move || e.fixture()).await.expect("fixture"));
    }
    let own = crate::matrix::own_offsets(&fixtures.iter().map(|f| f.as_path()).collect::<Vec<_>>());
    let own_av = |s: &crate::analysis::Source| own.iter().find(|(o, _)| o == s).map(|(_, ms)| *ms);
    let mut nginx = Nginx::start().await;
    let channel = Channel::start(GRACE_SECS, &[("nginx", nginx.url("soak"))]).await;
    let names: Vec<String> = (0..DJS).map(|n| format!("Dj{n}")).collect();
    let keys: Vec<String> = names.iter().map(|n| channel.server.add_user(n, false)).collect();
    // Mostly video DJs; one in eight audio-only.
    let fixture_of = |n: usize| &fixtures[if n == DJS - 1 { 3 } else { n % 3 }];
    let reference = rtmp_player(&channel.server).await;
    let mut players: Vec<Collected> = Vec::new();
    let mut finished_players: Vec<Collected> = Vec::new();
    let mut djs: Vec<Option<FfmpegDj>> = (0..DJS).map(|_| None).collect();
    let mut actions: Vec<Action> = Vec::new();
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut restarts = 0usize;
    let start = Instant::now();
    let mut next_sample = start;
    // The first restart falls in the run's first half, however short the run.
    let half = (run.as_secs() / 2).max(2);
    let mut next_restart = start + random_secs(&mut rng, half / 2, half);

    while start.elapsed() < run {
        if Instant::now() >= next_sample {
            samples.push(sample(channel.server.pid()));
            next_sample += Duration::from_secs(10);
        }
        // Keep two or three DJs publishing: newcomers queue up behind the lead.
        let publishing = djs.iter().filter(|d| d.is_some()).count();
        if publishing < 3 {
            let idle: Vec<usize> = (0..DJS).filter(|n| djs[*n].is_none()).collect();
            let n = idle[rng.random_range(0..idle.len())];
            djs[n] = Some(FfmpegDj::publish(fixture_of(n), &channel.rtmp_url(&keys[n])));
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        let status = channel.server.get_json("/api/v1/status").await;
        let program_ms = status["program"]["timestamp_ms"].as_i64().unwrap_or(0);
        let lead = status["on_air"]["dj_name"].as_str().and_then(|n| names.iter().position(|m| m == n));
        let queued = channel.server.queue().await.len();
        if Instant::now() >= next_restart {
            nginx.restart().await;
            restarts += 1;
            actions.push(Action { kind: "platform restart", program_ms });
            next_restart = Instant::now() + random_secs(&mut rng, 120, 420);
        } else if let (Some(lead), true) = (lead, queued >= 2) {
            let roll = rng.random_range(0..100);
            let kind = match roll {
                0..25 => {
                    if let Some(dj) = djs[lead].take() {
                        dj.stop().await;
                    }
                    "clean stop"
                }
                25..40 => {
                    if let Some(dj) = djs[lead].take() {
                        dj.kill();
                    }
                    // Back within the grace period (resumes) or after it (queues again).
                    let within = rng.random_bool(0.5);
                    let wait = if within { GRACE_SECS * 1000 / 3 } else { GRACE_SECS * 1000 + 1500 };
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    djs[lead] = Some(FfmpegDj::publish(fixture_of(lead), &channel.rtmp_url(&keys[lead])));
                    if within { "drop, back within grace" } else { "drop, back after grace" }
                }
                40..60 => {
                    channel.expire_slot().await;
                    "slot expiry"
                }
                60..75 => {
                    channel.skip().await;
                    "admin skip"
                }
                75..85 => {
                    channel.kick(&names[lead]).await;
                    djs[lead] = None;
                    "kick"
                }
                _ => {
                    // Players join and leave; the program does not change.
                    if players.len() < MAX_PLAYERS && rng.random_bool(0.6) {
                        players.push(rtmp_player(&channel.server).await);
                    } else if !players.is_empty() {
                        let leaving = players.remove(0);
                        leaving.leave();
                        finished_players.push(leaving);
                    }
                    "player join/leave"
                }
            };
            actions.push(Action { kind, program_ms });
            // Kicked or skipped DJs' encoders keep running until the server closes them.
            for dj in djs.iter_mut() {
                if dj.as_mut().is_some_and(|d| !d.running()) {
                    *dj = None;
                }
            }
        }
        tokio::time::sleep(random_secs(&mut rng, 6, 14)).await;
    }
    samples.push(sample(channel.server.pid()));
    let status = channel.server.get_json("/api/v1/status").await;
    let mut server = channel.server;
    server.terminate();
    drop(djs);
    tokio::time::sleep(Duration::from_secs(1)).await;
    nginx.kill();

    let mut missed = Vec::new();
    let connections = nginx.publishes();
    eprintln!("\n== soak results ({minutes} min, seed {seed}) ==");
    eprintln!("platform connections: {connections} (restarts {restarts}, expected {})", restarts + 1);
    eprintln!("destination: {}", status["destinations"][0]);
    if connections != restarts + 1 {
        missed.push(format!("platform saw {connections} connections for {restarts} restarts"));
    }
    let reference_report = analyse(&reference.tags());
    let kinds = per_kind(&reference_report, &actions, &own_av);
    eprintln!("transitions seen by the reference player, by the action before them:");
    eprintln!(
        "  {:<26} {:>5} {:>10} {:>12} {:>10} {:>8}",
        "kind", "count", "max gap", "max |audio|", "max |a-v|", "missed"
    );
    for (kind, k) in &kinds {
        eprintln!(
            "  {kind:<26} {:>5} {:>8} ms {:>9} ms {:>7} ms {:>8}",
            k.count, k.max_gap, k.max_audio, k.max_av, k.violations
        );
    }
    eprintln!(
        "reference player: largest gap {} ms, backward dts {}, ended: {:?}",
        reference_report.largest_picture_gap_ms,
        reference_report.backward_dts,
        reference.ended()
    );
    missed.extend(reference_report.violations_given(&own_av).into_iter().map(|v| format!("reference player: {v}")));
    for (n, player) in players.iter().chain(&finished_players).enumerate() {
        let tags = player.tags();
        let report = analyse(&tags);
        // One that left before anything reached it has nothing to judge.
        if !tags.is_empty() && !report.starts_decodable {
            missed.push(format!("player {n} that joined mid-run did not start with headers and a keyframe"));
        }
    }
    let mut decode_failures = 0;
    for file in nginx.recordings() {
        let report = analyse(&read_tags(&file));
        eprintln!(
            "platform recording {}: {} pictures, {} transitions, {} missed bars",
            file.display(),
            report.pictures,
            report.transitions.len(),
            report.violations_given(&own_av).len()
        );
        let violations = report.violations_given(&own_av);
        missed.extend(violations.into_iter().map(|v| format!("platform {}: {v}", file.display())));
        let errors = decode_errors(&file);
        if !errors.trim().is_empty() {
            decode_failures += errors.lines().count();
            eprintln!("  decode errors: {}", errors.lines().take(3).collect::<Vec<_>>().join(" | "));
            // Kept for review under target/test-artifacts/.
            let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
            let _ = std::fs::create_dir_all(&artifacts);
            if let Some(name) = file.file_name() {
                let _ = std::fs::copy(&file, artifacts.join(name));
            }
        }
    }
    eprintln!("decode errors: {decode_failures}");
    if decode_failures > 0 {
        missed.push(format!("{decode_failures} decode error lines from ffmpeg"));
    }
    missed.extend(flatness(&samples, run));
    assert!(missed.is_empty(), "{} bars missed:\n{}", missed.len(), missed.join("\n"));
}

fn random_secs(rng: &mut StdRng, low: u64, high: u64) -> Duration {
    Duration::from_secs(rng.random_range(low..=high))
}

/// RSS in KiB and open file descriptors of a process, from /proc.
fn sample(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
    (rss, fds)
}

/// Memory and descriptors stay flat: the mean of the last part within 10 % of the first
/// (10 minutes each on a run of 30 or more, a third each on shorter ones).
fn flatness(samples: &[(u64, u64)], run: Duration) -> Vec<String> {
    let part = if run >= Duration::from_secs(30 * 60) { 60 } else { samples.len() / 3 };
    let mut missed = Vec::new();
    if part == 0 || samples.len() < 2 * part {
        return vec![format!("only {} samples of RSS and fds", samples.len())];
    }
    let mean = |s: &[(u64, u64)], f: fn(&(u64, u64)) -> u64| s.iter().map(f).sum::<u64>() as f64 / s.len() as f64;
    let (first, last) = (&samples[..part], &samples[samples.len() - part..]);
    for (what, f) in [("RSS KiB", (|s: &(u64, u64)| s.0) as fn(&(u64, u64)) -> u64), ("open fds", |s| s.1)] {
        let (a, b) = (mean(first, f), mean(last, f));
        let all: Vec<u64> = samples.iter().map(f).collect();
        eprintln!(
            "{what}: first {a:.0}, last {b:.0} ({:+.1} %), min {}, max {}",
            (b - a) / a * 100.0,
            all.iter().min().unwrap_or(&0),
            all.iter().max().unwrap_or(&0)
        );
        // Open files follow how many DJs and players happen to be connected when sampled
        // (up to a dozen either way in a short run); a leak grows past that.
        let slack = if what == "open fds" { (a * 0.10).max(f64::from(FD_SLACK)) } else { a * 0.10 };
        if (b - a).abs() > slack {
            missed.push(format!("{what} not flat: {a:.0} -> {b:.0}"));
        }
    }
    missed
}

#[derive(Default)]
struct Kind {
    count: usize,
    max_gap: i64,
    max_audio: i64,
    max_av: i64,
    violations: usize,
}

/// Each transition is named by the last action made before it in program time (an action
/// at most 20 s earlier: replays from the GOP cache and grace periods delay a splice).
fn per_kind(
    report: &Report,
    actions: &[Action],
    own_av: &dyn Fn(&Source) -> Option<i64>,
) -> BTreeMap<&'static str, Kind> {
    let mut kinds: BTreeMap<&'static str, Kind> = BTreeMap::new();
    for t in &report.transitions {
        let kind = actions
            .iter()
            .rev()
            .find(|a| a.program_ms <= t.at_ms + 500 && t.at_ms - a.program_ms < 20_000)
            .map_or("other", |a| a.kind);
        let k = kinds.entry(kind).or_default();
        k.count += 1;
        k.max_gap = k.max_gap.max(t.picture_gap_ms.unwrap_or(0));
        k.max_audio = k.max_audio.max(t.audio_gap_ms.map_or(0, i64::abs));
        let own = own_av(&t.to);
        k.max_av = k.max_av.max(t.av_offset_ms.zip(own).map_or(0, |(ms, own)| (ms - own).abs()));
        k.violations += usize::from(!t.violations(own).is_empty());
    }
    kinds
}
