//! `keyward`: parse the command line, then serve, migrate or create an admin.

use clap::Parser;
use keyward_server::{boot, cli, router};
use std::net::SocketAddr;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
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
            let key = boot::create_key(&db, &args).await?;
            println!("{key}");
        }
        cli::Command::Serve(args) => {
            let secret = boot::secret(&db, args.secret.as_deref()).await?;
            let config = boot::config(&args, secret)?;
            let options = boot::leptos_options(&args.leptos_config, args.listen)?;
            boot::bootstrap_admin(
                &db,
                &args.admin_email,
                args.admin_password.as_deref(),
                &config.origin_string(),
            )
            .await?;
            let state = boot::state(db.clone(), config, options);
            let sweeper = tokio::spawn(sweep_sessions(db.clone()));
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
            tracing::info!(address = %args.listen, origin = %state.config.origin_string(), "keyward serving");
            axum::serve(
                listener,
                router(state).into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| e.to_string())?;
            sweeper.abort();
            tracing::info!("keyward stopped");
        }
    }
    db.close().await;
    Ok(())
}

/// Deletes expired sessions every ten minutes.
async fn sweep_sessions(db: app::ssr::Db) {
    use tower_sessions::session_store::ExpiredDeletion;
    let store = app::ssr::session_store::DbSessionStore::new(db);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        if let Err(e) = store.delete_expired().await {
            tracing::warn!(error = %e, "session sweep failed");
        }
    }
}

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
