//! Command line: `serve` (the default) and user management.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::auth::{generate_stream_key, hash_password, normalize_dj_name, validate_email, validate_password};
use crate::config::{Config, LogFormat, Settings, StoreArgs};
use crate::store::StoreConfig;
use crate::store::{NewUser, Store, StoreError, User};

/// Exit status for bad configuration or usage (clap uses it for usage errors too).
const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "motherstream", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    /// `serve` flags, accepted without the subcommand too.
    #[command(flatten)]
    serve: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(Box<Settings>),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Import the accounts of the original motherstream (its Postgres `users` table), with
    /// their passwords and stream keys unchanged; all or nothing, and a second run changes
    /// nothing.
    ImportSeed {
        /// The original's database, `postgres://USER:PASSWORD@HOST/DB`.
        #[arg(long)]
        from: String,
        /// The original's QUEUE.json: who was queued is reported, not imported (DJs rejoin
        /// the queue by publishing).
        #[arg(long)]
        queue: Option<std::path::PathBuf>,
        /// Report what would be imported without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account; prints its stream key as the last line.
    Add {
        #[arg(long)]
        dj_name: String,
        #[arg(long)]
        email: String,
        /// Make the account an admin (public sign-up never does: this, or the setup link a
        /// server without an admin prints at start, makes the first one).
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of stdin (otherwise one is generated and printed).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List {
        /// Print JSON (stream keys included) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Give a DJ a new stream key (the old one stops working); prints it.
    ResetKey { dj_name: String },
    /// Disable an account: its stream key is refused from now on.
    Disable { dj_name: String },
    /// Re-enable a disabled account.
    Enable { dj_name: String },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    match cli.command {
        None => serve(&runtime, &cli.store, &cli.serve),
        Some(Command::Serve(args)) => serve(&runtime, &cli.store, &args),
        Some(Command::User(command)) => {
            let config = match StoreConfig::resolve(&cli.store) {
                Ok(c) => c,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            init_logging(LogFormat::Text, "warn", false);
            runtime.block_on(user_command(&config, command))
        }
        Some(Command::ImportSeed { from, queue, dry_run }) => {
            let config = match StoreConfig::resolve(&cli.store) {
                Ok(c) => c,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            init_logging(LogFormat::Text, "warn", false);
            runtime.block_on(import_seed(&config, &from, queue.as_deref(), dry_run))
        }
    }
}

async fn import_seed(config: &StoreConfig, from: &str, queue: Option<&std::path::Path>, dry_run: bool) -> ExitCode {
    let store = match Store::open(config).await {
        Ok(s) => s,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    let result = crate::import::run(&store, from, queue, dry_run).await;
    store.close().await;
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(lines) => {
            for line in lines {
                eprintln!("error: {line}");
            }
            ExitCode::from(1)
        }
    }
}

fn serve(runtime: &tokio::runtime::Runtime, store: &StoreArgs, args: &Settings) -> ExitCode {
    let env = crate::config::seed_env::from_process();
    let mut args = args.clone();
    if let Err(e) = crate::config::seed_env::apply_smtp_aliases(&env, &mut args) {
        return fail(EXIT_CONFIG, &e.to_string());
    }
    let config = match Config::resolve(store, &args) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    let var = |name: &str| env.get(name).map(String::as_str);
    // Held until the server has stopped: dropping it flushes the events still queued.
    let _reporting = match crate::sentry_report::init(var("SENTRY_DSN"), var("SENTRY_ENVIRONMENT")) {
        Ok(guard) => guard,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    init_logging(config.log_format, "info", _reporting.is_some());
    for line in crate::config::seed_env::warnings(&env) {
        tracing::warn!("{line}");
    }
    match runtime.block_on(crate::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_CONFIG, &e.to_string()),
    }
}

async fn user_command(config: &StoreConfig, command: UserCommand) -> ExitCode {
    let store = match Store::open(config).await {
        Ok(s) => s,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    let result = run_user_command(&store, command).await;
    store.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e),
    }
}

async fn run_user_command(store: &Store, command: UserCommand) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let print = |out: &mut std::io::StdoutLock, line: &str| writeln!(out, "{line}").map_err(|e| e.to_string());
    match command {
        UserCommand::Add { dj_name, email, admin, password_stdin } => {
            let dj_name = normalize_dj_name(&dj_name)?;
            validate_email(&email)?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading stdin: {e}"))?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (generate_stream_key()[..20].to_owned(), true)
            };
            validate_password(&password)?;
            let password_hash = hash_password(&password)?;
            let new = NewUser { dj_name, email, password_hash, stream_key: generate_stream_key(), is_admin: admin };
            let user = store.create_user(&new).await.map_err(describe)?;
            let role = if user.is_admin { "admin" } else { "user" };
            print(&mut out, &format!("created {role} {} <{}>", user.dj_name, user.email))?;
            if generated {
                print(&mut out, &format!("password: {password}"))?;
            }
            print(&mut out, &user.stream_key)
        }
        UserCommand::List { json } => {
            let users = store.list_users().await.map_err(describe)?;
            if json {
                let views: Vec<UserJson> = users.iter().map(UserJson::from).collect();
                let text = serde_json::to_string_pretty(&views).map_err(|e| e.to_string())?;
                print(&mut out, &text)
            } else {
                print(
                    &mut out,
                    &format!("{:<6} {:<24} {:<32} {:<6} {:<8}", "ID", "DJ NAME", "EMAIL", "ROLE", "STATUS"),
                )?;
                for u in &users {
                    let role = if u.is_admin { "admin" } else { "user" };
                    let status = if u.is_active { "active" } else { "disabled" };
                    print(
                        &mut out,
                        &format!("{:<6} {:<24} {:<32} {:<6} {:<8}", u.id, u.dj_name, u.email, role, status),
                    )?;
                }
                Ok(())
            }
        }
        UserCommand::ResetKey { dj_name } => {
            let user = find(store, &dj_name).await?;
            let key = generate_stream_key();
            store.set_stream_key(user.id, &key).await.map_err(describe)?;
            print(&mut out, &key)
        }
        UserCommand::Disable { dj_name } => set_active(store, &dj_name, false, &mut out).await,
        UserCommand::Enable { dj_name } => set_active(store, &dj_name, true, &mut out).await,
    }
}

async fn set_active(store: &Store, dj_name: &str, active: bool, out: &mut impl Write) -> Result<(), String> {
    let user = find(store, dj_name).await?;
    store.set_active(user.id, active).await.map_err(describe)?;
    let state = if active { "enabled" } else { "disabled" };
    writeln!(out, "{} {state}", user.dj_name).map_err(|e| e.to_string())
}

async fn find(store: &Store, dj_name: &str) -> Result<User, String> {
    store.user_by_dj_name(dj_name).await.map_err(describe)?.ok_or_else(|| format!("no user named {dj_name}"))
}

fn describe(e: StoreError) -> String {
    e.to_string()
}

/// `user list --json` rows: everything but the password hash.
#[derive(Serialize)]
struct UserJson<'a> {
    id: i64,
    dj_name: &'a str,
    email: &'a str,
    stream_key: &'a str,
    is_admin: bool,
    is_active: bool,
    timezone: &'a str,
    created_at: i64,
    up_next_email: bool,
    discord_user_id: Option<&'a str>,
}

impl<'a> From<&'a User> for UserJson<'a> {
    fn from(u: &'a User) -> Self {
        Self {
            id: u.id,
            dj_name: &u.dj_name,
            email: &u.email,
            stream_key: &u.stream_key,
            is_admin: u.is_admin,
            is_active: u.is_active,
            timezone: &u.timezone,
            created_at: u.created_at,
            up_next_email: u.up_next_email,
            discord_user_id: u.discord_user_id.as_deref(),
        }
    }
}

/// Logs to stderr and, when error reporting is on, to Sentry as well (error events become
/// Sentry events, warnings and info their breadcrumbs).
fn init_logging(format: LogFormat, default_level: &str, sentry: bool) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_env("MOTHERSTREAM_LOG")
        .or_else(|_| EnvFilter::try_new(format!("{default_level},sqlx=warn")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let stderr = match format {
        LogFormat::Text => stderr.boxed(),
        LogFormat::Json => stderr.json().boxed(),
    };
    let sentry = sentry.then(sentry::integrations::tracing::layer);
    let _ = tracing_subscriber::registry().with(filter).with(stderr).with(sentry).try_init();
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}
