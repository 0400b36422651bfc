//! `serve`: the reference server until Ctrl-C or SIGTERM, configured from flags and an
//! optional TOML file.

use std::process::ExitCode;

use crate::cli::ServeArgs;

/// `rtm-tui serve`: the reference server until Ctrl-C or SIGTERM.
pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use rtm::server::{Config, RedisSettings, ServerFile, StoreLocation};

    let file = match &args.config {
        Some(path) => ServerFile::load(path)?,
        None => ServerFile::default(),
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| ([127, 0, 0, 1], rtm::protocol::DEFAULT_PORT).into());
    let store = if !args.engine.is_empty() {
        StoreLocation::Redis(RedisSettings {
            urls: args.engine.clone(),
            node: args
                .node_id
                .clone()
                .unwrap_or_else(|| format!("{}:{}", host_name(), listen.port())),
            snapshot_every: args.snapshot_every,
        })
    } else if args.ephemeral {
        StoreLocation::Ephemeral
    } else {
        StoreLocation::Path(
            args.data_dir
                .or_else(|| file.data_dir.clone())
                .unwrap_or_else(rtm::paths::data_dir),
        )
    };
    let mut config = Config {
        store,
        history_limit: args.history_limit,
        ..Config::default()
    };
    file.apply(&mut config);
    for spec in &args.apps {
        config.apps.add_spec(spec);
    }
    let apps_configured = !config.apps.apps.is_empty();
    config.apps.open = rtm::server::open_mode(listen.ip(), args.open, file.open, apps_configured);
    config.api_keys.extend(args.api_keys.iter().cloned());
    if args.admin_listen.is_some() {
        config.admin_listen = args.admin_listen;
    }
    if args.no_rate_limits {
        config.rate_limits = rtm::server::RateLimits::unlimited();
    }
    let seconds = std::time::Duration::from_secs;
    if let Some(secs) = args.grace {
        config.grace = seconds(secs);
    }
    if let Some(secs) = args.ack_timeout {
        config.ack_timeout = seconds(secs);
    }
    if let Some(secs) = args.invite_expiry {
        config.invitation_timeout = seconds(secs);
    }
    if let Some(secs) = args.token_warning {
        config.token_warning = seconds(secs);
    }
    if let Some(secs) = args.attribute_expiry {
        config.channel_attributes_ttl = seconds(secs);
    }
    if let Some(secs) = args.media_expiry {
        config.media_expiry = seconds(secs);
    }
    if args.no_media {
        config.media = false;
    }
    if let Some(ms) = args.write_delay {
        config.write_delay = std::time::Duration::from_millis(ms);
    }
    // A setting the server cannot work with stops the start here, named, before binding.
    config.validate()?;
    super::raise_fd_limit();
    if let Some(warning) = rtm::server::open_mode_warning(listen, config.apps.open) {
        eprintln!("{warning}");
    }
    let tls_files = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(rtm::server::TlsFiles { cert, key }),
        _ => file.tls.clone(),
    };
    let tls = tls_files
        .as_ref()
        .map(rtm::server::tls_acceptor)
        .transpose()?;
    config.tls = tls;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let scheme = if config.tls.is_some() { "wss" } else { "ws" };
    println!(
        "rtm-tui server listening on {scheme}://{addr}{}",
        rtm::protocol::WS_PATH
    );
    let admin = match config.admin_listen {
        Some(admin) => {
            let bound = tokio::net::TcpListener::bind(admin)
                .await
                .with_context(|| format!("cannot listen on {admin} (--admin-listen)"))?;
            println!(
                "rtm-tui admin (health, metrics) listening on http://{}",
                bound.local_addr()?
            );
            Some(bound)
        }
        None => None,
    };
    rtm::server::run_with_admin(listener, admin, config, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// This machine's name, for a node's default id.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "node".to_string())
}
