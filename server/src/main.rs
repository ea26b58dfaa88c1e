//! `keyward`: parse the command line, then serve, migrate or create an admin.

use clap::Parser;
use keyward_server::{boot, cli, router};
use std::future::IntoFuture;
use std::net::SocketAddr;
use tracing_subscriber::EnvFilter;

/// jemalloc, not glibc's malloc: under 64 concurrent API clients on two cores, glibc's arena
/// locks and heap consolidation cost the key-authenticated path up to half its throughput
/// (`bench/usage.sh`: full path 36.8k → 59.3k req/s; 33k → 64–66k with the same binary under
/// `LD_PRELOAD`), for about 5 MiB more peak memory under a sign-in flood
/// (`bench/signin-flood.sh`). Numbers in the README's performance section.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(start());
}

/// glibc's malloc now serves only C code (SQLite's page caches and statements). Before jemalloc
/// it served everything, and it kept argon2's 19 MiB blocks in per-thread arenas (442 MiB under a
/// sign-in flood; docs/security.md): a fixed mmap threshold and two arenas still bound what the
/// C side can hold on to.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

async fn start() {
    // Logs go to stderr: stdout carries only what a command promises (a key, a user id).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("KEYWARD_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn")),
        )
        .init();
    let cli = cli::Cli::parse();
    if let Err(message) = run(cli).await {
        eprintln!("keyward: {message}");
        std::process::exit(1);
    }
}

async fn run(cli: cli::Cli) -> Result<(), String> {
    let db = boot::database(&cli.database_url).await?;
    let secret_file = cli
        .secret_file
        .clone()
        .unwrap_or_else(|| boot::default_secret_file(&cli.database_url));
    match cli.command {
        cli::Command::Migrate => {
            println!("migrations applied");
        }
        cli::Command::CreateAdmin(args) => {
            let name = args
                .name
                .unwrap_or_else(|| args.email.split('@').next().unwrap_or("admin").to_string());
            let user_id = app::identity::ssr::create_user(
                &db,
                &args.email,
                &name,
                &args.password,
                Some(app::access::Role::Owner),
                None,
            )
            .await
            .map_err(|e| e.message)?;
            println!("{user_id}");
        }
        cli::Command::CreateKey(args) => {
            let key = boot::create_key(&db, &args, &secret_file).await?;
            println!("{key}");
        }
        cli::Command::Audit(args) => {
            let secret = boot::secret(&db, args.secret.as_deref(), &secret_file).await?;
            match args.action {
                cli::AuditAction::Verify => println!("{}", boot::audit_verify(&db, &secret).await?),
            }
        }
        cli::Command::SecurityScan(args) => {
            let secret = boot::secret(&db, args.serve.secret.as_deref(), &secret_file).await?;
            let mut config = boot::config(&args.serve, secret)?;
            config.secret_file = args.serve.secret.is_none().then(|| secret_file.clone());
            let (text, worst) = boot::security_scan(&db, &config, args.json).await?;
            println!("{text}");
            if worst == Some(app::security::Severity::High) {
                std::process::exit(2);
            }
        }
        cli::Command::Serve(args) => {
            let open_files = keyward_server::live::raise_open_files_limit();
            tracing::info!(?open_files, "open-file limit");
            let secret = boot::secret(&db, args.secret.as_deref(), &secret_file).await?;
            let mut config = boot::config(&args, secret)?;
            config.secret_file = args.secret.is_none().then(|| secret_file.clone());
            let options = boot::leptos_options(&args.leptos_config, args.listen)?;
            boot::bootstrap_admin(
                &db,
                &args.admin_email,
                args.admin_password.as_deref(),
                &config.origin_string(),
            )
            .await?;
            let state = boot::state(db.clone(), config, options)?;
            let workers = keyward_server::workers::Workers::start(&state);
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
            tracing::info!(address = %args.listen, origin = %state.config.origin_string(), "keyward serving");
            if let Some(proxy) = keyward_server::metrics::proxy_in_allowed_networks(&state.config) {
                tracing::warn!(
                    %proxy,
                    "GET /metrics: a trusted proxy is inside KEYWARD_METRICS_ALLOW and no KEYWARD_METRICS_TOKEN is set; requests from the proxy need the token, so a scraper on the proxy's address is refused: set a token, or scrape from another address"
                );
            }
            // The first SIGTERM or Ctrl-C starts a graceful stop; a second one exits at once.
            let (stopping, mut stop) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown().await;
                tracing::info!("stopping: draining requests (a second signal exits at once)");
                let _ = stopping.send(true);
                shutdown().await;
                tracing::warn!("second signal: exiting now");
                std::process::exit(130);
            });
            let mut drained = stop.clone();
            let serve = axum::serve(
                listener,
                router(state).into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = drained.wait_for(|s| *s).await;
            });
            // A client that never finishes its request (or a live chart's event stream) cannot
            // hold the stop hostage: after DRAIN the remaining connections are dropped.
            tokio::select! {
                served = serve.into_future() => served.map_err(|e| e.to_string())?,
                _ = async {
                    let _ = stop.wait_for(|s| *s).await;
                    tokio::time::sleep(DRAIN).await;
                } => tracing::warn!(seconds = DRAIN.as_secs(), "connections still open after the drain: closed"),
            }
            // Requests have drained: let the workers write what they hold, then stop.
            workers.shutdown(std::time::Duration::from_secs(10)).await;
            tracing::info!("keyward stopped");
        }
    }
    // A database that stopped answering must not keep the process alive.
    if tokio::time::timeout(std::time::Duration::from_secs(5), db.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections did not close within 5 s");
    }
    Ok(())
}

/// How long a stop waits for open requests before dropping them.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
