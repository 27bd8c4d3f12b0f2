//! `motherstream serve`: opens the store, binds the listeners and starts every service.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth::TokenKeys;
use crate::channel::slate as slate_gen;
use crate::channel::{ChannelProfile, OffProfilePolicy, differences};
use crate::config::{Config, IdleSetting};
use crate::history;
use crate::hls;
use crate::hub::Publishers;
use crate::hub::transcoder::check_ffmpeg;
use crate::ingest::{self, IngestContext};
use crate::integrations::destination::{Destination, Destinations, Tuning};
use crate::integrations::discord::Discord;
use crate::integrations::email::{MailSettings, Mailer};
use crate::integrations::obs::Obs;
use crate::integrations::recognition;
use crate::integrations::tls::Connector;
use crate::integrations::up_next::{self, UpNextLookup};
use crate::metrics::Counters;
use crate::program::slate::Slate;
use crate::program::{self, IdleMode, ProgramConfig};
use crate::queue::{actor, engine};
use crate::ratelimit::{AccountThrottle, PerIpCap, RateLimiter};
use crate::recorder;
use crate::store::Store;
use crate::web;

/// The slate covers for an on-air DJ whose media stops for this long.
const PROGRAM_FILL_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Time given to recordings and destinations to end cleanly at shutdown.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(12);

/// A start-up failure, as one line naming the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(config: Config) -> Result<(), StartupError> {
    match raise_open_file_limit() {
        Ok(limit) => {
            tracing::info!("open files limit: {limit}");
            let wanted = (config.limits.http_max_connections + config.limits.max_connections) as u64 + 256;
            if limit < wanted {
                tracing::warn!(
                    "the open files limit ({limit}) is below the connection limits' needs ({wanted}): \
                     raise it (LimitNOFILE=) or lower limits.http_max_connections / limits.max_connections"
                );
            }
        }
        Err(e) => tracing::warn!("could not read or raise the open files limit: {e}"),
    }
    crate::store::prepare_data_dir(&config.store.data_dir).map_err(StartupError)?;
    let store = Store::open(&config.store).await.map_err(StartupError)?;
    let jwt_secret = std::env::var("JWT_SECRET").ok().filter(|s| !s.is_empty());
    let tokens = TokenKeys::load_or_create(jwt_secret.as_deref(), &config.store.data_dir).map_err(StartupError)?;

    let rtmp = TcpListener::bind(config.rtmp_listen)
        .await
        .map_err(|e| StartupError(format!("--rtmp-listen {}: {e}", config.rtmp_listen)))?;
    let http = TcpListener::bind(config.http_listen)
        .await
        .map_err(|e| StartupError(format!("--http-listen {}: {e}", config.http_listen)))?;
    let rtmp_addr = rtmp.local_addr().map_err(|e| StartupError(format!("--rtmp-listen: {e}")))?;
    let http_addr = http.local_addr().map_err(|e| StartupError(format!("--http-listen: {e}")))?;

    let settings = engine::Settings {
        swap_interval: config.swap_interval,
        grace_period: config.grace_period,
        block_enabled: config.block_toggle,
        booking_grace: std::time::Duration::from_secs(config.timetable.booking_grace_seconds),
    };
    let idle = match &config.idle {
        IdleSetting::Slate(None) => IdleMode::Slate(Arc::new(generated_slate(&config.channel.profile).await?)),
        IdleSetting::Slate(Some(path)) => {
            let slate = Slate::from_file(path).map_err(|e| StartupError(format!("--slate: {e}")))?;
            warn_if_off_profile(path, &config.channel.profile);
            IdleMode::Slate(Arc::new(slate))
        }
        IdleSetting::Disconnect => IdleMode::Disconnect,
    };
    if config.channel.off_profile == OffProfilePolicy::Transcode {
        check_ffmpeg(&config.channel.ffmpeg).await.map_err(StartupError)?;
    }
    tracing::info!(
        "channel profile {}; off-profile DJs: {}",
        config.channel.profile.describe(),
        config.channel.off_profile.name()
    );
    let destinations = Destination::parse_all(&config.destinations).map_err(|e| StartupError(e.to_string()))?;
    let connector = Connector::new(config.destination_ca_file.as_deref()).map_err(|e| StartupError(e.to_string()))?;
    let (shutdown_tx, shutdown) = watch::channel(false);

    let queue = actor::spawn(store.clone(), settings).await;
    let publishers = Publishers::new(config.channel.clone());
    tokio::spawn(publishers.clone().follow_queue(queue.program_source(), queue.standby()));
    let program = program::spawn(
        queue.program_source(),
        publishers.clone(),
        ProgramConfig { idle, fill_after: PROGRAM_FILL_AFTER },
        shutdown.clone(),
    );
    let (recorder, recordings) = recorder::spawn(
        config.recording.clone(),
        queue.program_source(),
        queue.subscribe(),
        publishers.clone(),
        program.clone(),
        shutdown.clone(),
    );

    let hls = config.hls.enabled.then(|| hls::spawn(config.hls, program.clone(), shutdown.clone()));
    let counters = Arc::new(Counters::default());
    let rtmp_listening = Arc::new(AtomicBool::new(true));
    let mut finishing = JoinSet::new();
    for task in recordings {
        finishing.spawn(async move {
            let _ = task.await;
        });
    }
    let history = history::spawn(store.clone(), queue.subscribe(), recorder.clone(), shutdown.clone());
    finishing.spawn(async move {
        let _ = history.await;
    });
    let destinations =
        Destinations::spawn(destinations, &program, &connector, &Tuning::default(), &shutdown, &mut finishing);
    if let Some(obs) = config.obs.clone() {
        let task = Obs::spawn(obs, &queue, shutdown.clone());
        finishing.spawn(async move {
            let _ = task.await;
        });
    }
    let up_next = UpNextLookup::new(store.clone(), publishers.clone());
    if let Some(discord) = config.discord.clone() {
        tracing::info!("announcing on Discord ({})", discord.redacted_url());
        let task = Discord::spawn(discord, queue.subscribe(), destinations.clone(), up_next.clone(), shutdown.clone());
        finishing.spawn(async move {
            let _ = task.await;
        });
    }

    let mail_settings = MailSettings { public_url: config.public_url.clone(), reset_ttl: config.password_reset_ttl };
    let mailer = match &config.smtp {
        Some(smtp) => {
            let (mailer, task) =
                Mailer::spawn(smtp, mail_settings, shutdown.clone()).map_err(|e| StartupError(e.to_string()))?;
            finishing.spawn(async move {
                let _ = task.await;
            });
            tracing::info!("sending account emails through {}:{} as {}", smtp.host, smtp.port, smtp.from);
            let task = up_next::spawn_email(up_next, mailer.clone(), queue.subscribe(), shutdown.clone());
            finishing.spawn(async move {
                let _ = task.await;
            });
            mailer
        }
        None => {
            tracing::info!("SMTP not configured: password reset links are written to this log");
            Mailer::log_only(mail_settings)
        }
    };
    // Event streams never end by themselves: the live state closes them as the HTTP server
    // starts its graceful shutdown, which would otherwise wait for them forever.
    let (http_stopping_tx, http_stopping) = watch::channel(false);
    let live = web::LiveState::spawn(
        web::LiveSources {
            queue: queue.clone(),
            store: store.clone(),
            publishers: publishers.clone(),
            destinations: destinations.clone(),
        },
        http_stopping.clone(),
    )
    .await;

    if let Some(recognition) = config.recognition.clone() {
        let sources = recognition::Sources {
            queue: queue.clone(),
            program: program.clone(),
            store: store.clone(),
            recorder: recorder.clone(),
            track_changed: live.poke_handle(),
            counters: counters.clone(),
        };
        let task = recognition::spawn(recognition, sources, shutdown.clone()).map_err(StartupError)?;
        finishing.spawn(async move {
            let _ = task.await;
        });
    }

    let ingest_ctx = Arc::new(IngestContext::new(
        store.clone(),
        queue.clone(),
        program.clone(),
        publishers.clone(),
        config.limits.clone(),
        config.stall_timeout,
        counters.clone(),
    ));
    match web::sweep_orphan_pictures(&store, &config.store.data_dir).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} orphaned profile picture file(s)"),
        Err(e) => tracing::warn!("sweeping orphaned profile pictures: {e}"),
    }
    let setup = web::SetupLink::default();
    let has_admin = store
        .has_active_admin()
        .await
        .map_err(|e| StartupError(format!("DATABASE_URL: looking for an admin account: {e}")))?;
    if !has_admin {
        let base = config.public_url.clone().unwrap_or_else(|| format!("http://{http_addr}"));
        tracing::warn!(
            "no admin account yet: open {base}/setup/{} to create one (the link works once), \
             or run `motherstream user add --admin`",
            setup.create()
        );
    }
    let state = web::AppState {
        store: store.clone(),
        queue: queue.clone(),
        publishers,
        program,
        hls,
        previews: hls::preview::Previews::new(config.hls),
        recorder,
        destinations,
        tokens,
        login_attempts: Arc::new(RateLimiter::per_minute(config.limits.login_attempts_per_minute)),
        signup_attempts: Arc::new(RateLimiter::per_minute(config.limits.signup_attempts_per_minute)),
        login_failures: Arc::new(AccountThrottle::new(
            config.limits.login_failures_per_account,
            config.limits.login_failure_window,
        )),
        trusted_proxies: config.trusted_proxies.clone().into(),
        event_streams: PerIpCap::new(config.limits.max_event_streams_per_ip),
        flv_viewers: PerIpCap::new(config.limits.max_flv_viewers_per_ip),
        max_body: config.limits.max_body_bytes,
        request_timeout: config.limits.http_request_timeout,
        http_stopping,
        data_dir: config.store.data_dir.clone(),
        mailer,
        rtmp_port: rtmp_addr.port(),
        public_rtmp_url: config.public_rtmp_url.clone(),
        public_url: config.public_url.clone(),
        password_reset_ttl: config.password_reset_ttl,
        counters,
        rtmp_listening: rtmp_listening.clone(),
        live,
        setup,
        picture_uploads: Default::default(),
        metrics: Arc::new(config.metrics.clone()),
        timetable_requests: config.timetable.requests,
    };
    if let Some(listen) = config.metrics.listen {
        let listener =
            TcpListener::bind(listen).await.map_err(|e| StartupError(format!("--metrics-listen {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| StartupError(format!("--metrics-listen: {e}")))?;
        tracing::info!("metrics listening on {addr}");
        let metrics_app = web::metrics_router(state.clone());
        // Scrapes are short and hold no state worth a graceful end: the task ends with the
        // process.
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, metrics_app).await {
                tracing::error!("metrics listener failed: {e}");
            }
        });
    }
    let app = web::router(state);

    tracing::info!(
        "rtmp ingest listening on {rtmp_addr} (publish to rtmp://HOST:{}/live/<stream key>)",
        rtmp_addr.port()
    );
    tracing::info!("http listening on {http_addr}");

    let ingest = tokio::spawn(ingest::serve(rtmp, ingest_ctx));
    let http_limits = web::HttpLimits {
        max_connections: config.limits.http_max_connections,
        max_connections_per_ip: config.limits.http_max_connections_per_ip,
        header_timeout: config.limits.http_header_timeout,
    };
    web::serve(http, app, http_limits, config.trusted_proxies.clone(), async move {
        shutdown_signal().await;
        let _ = http_stopping_tx.send(true);
    })
    .await;
    tracing::info!("shutting down (a second signal exits at once)");
    tokio::spawn(async {
        shutdown_signal().await;
        eprintln!("second signal: exiting now");
        std::process::exit(1);
    });
    ingest.abort();
    rtmp_listening.store(false, Ordering::Relaxed);
    // The queue with the lead's time left to this moment, so a restart resumes exactly.
    if let Err(e) = queue.save_now(&store).await {
        tracing::error!("could not save the queue at shutdown: {e}");
    }
    let _ = shutdown_tx.send(true);
    // Let recordings finish their files and destinations end their streams cleanly; a
    // wedged disk or platform must not keep the process alive.
    let finished = tokio::time::timeout(SHUTDOWN_GRACE, async { while finishing.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        tracing::warn!("recordings and destinations did not finish within {SHUTDOWN_GRACE:?}");
    }
    store.close().await;
    Ok(())
}

/// The built-in slate, encoded in the channel profile.
async fn generated_slate(profile: &ChannelProfile) -> Result<Slate, StartupError> {
    let started = std::time::Instant::now();
    let for_encoder = profile.clone();
    let flv = tokio::task::spawn_blocking(move || slate_gen::generate(&for_encoder))
        .await
        .map_err(|e| StartupError(format!("generating the slate: {e}")))?
        .map_err(StartupError)?;
    let slate = Slate::from_bytes(flv).map_err(|e| StartupError(format!("generated slate: {e}")))?;
    tracing::debug!("slate generated in {} ms", started.elapsed().as_millis());
    return_freed_memory();
    Ok(slate)
}

/// The slate's encoder frees about 20 MiB of frame buffers at once, which glibc keeps in the
/// heap for reuse (its trim threshold grew with those blocks): an idle server's resident
/// memory was 38 MiB instead of 19. Hand it back to the system.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of glibc's heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A user slate that differs from the channel profile makes the program change size or
/// sound whenever it plays: say so, naming what differs.
fn warn_if_off_profile(path: &std::path::Path, profile: &ChannelProfile) {
    let described = std::fs::read(path).map_err(|e| e.to_string()).and_then(|b| slate_gen::describe_flv(b.into()));
    match described {
        Ok(stream) => {
            let found = differences(profile, &stream);
            if !found.is_empty() {
                let what: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
                tracing::warn!(
                    "--slate {} does not match the channel profile: {} (the program changes format when it plays)",
                    path.display(),
                    what.join("; ")
                );
            }
        }
        Err(e) => tracing::warn!("--slate {}: cannot check it against the channel profile: {e}", path.display()),
    }
}

/// Raises the soft limit on open files to the hard one (each connection is a descriptor, and
/// distributions default the soft limit to 1024) and returns the limit now in force.
#[cfg(unix)]
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own and pass by valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the struct passed by valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

#[cfg(not(unix))]
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no open files limit on this system"))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
