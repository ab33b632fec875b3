//! `kinescope serve`: prepares the data directory (catalog, credentials, TLS), binds the one
//! listener, prints what a person needs to connect, and serves until SIGINT/SIGTERM, then
//! stops accepting and gives in-flight requests `shutdown_timeout` to finish.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kinescope_archive::{
    Archive, Catalog, Clock, Durability, FragmentLog, LifecyclePolicy, PgCatalog, SEGMENT_BYTES,
    SqliteCatalog, SystemClock, spawn_lifecycle, spawn_packer,
};
use kinescope_playback::{Player, SessionKey};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::auth::{Auth, KeyStore};
use crate::config::{CatalogUrl, Config, KeyPair, TlsMode, redact_password, url_host};
use crate::limits::Limits;
use crate::listener::{self, ListenerConfig};
use crate::secrets::{load_or_generate_credentials, load_or_generate_session_secret};
use crate::state::AppState;
use crate::{http, tls};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Latency buckets of the request histogram, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Where the credentials that clients should use came from.
enum Shown {
    /// Generated now or read from `DATA_DIR/credentials`: printed in full.
    Generated {
        pair: KeyPair,
        path: PathBuf,
        new: bool,
    },
    /// Configured by the operator: the secret is not printed.
    Configured(Vec<String>),
    Anonymous,
}

/// The catalog `--catalog` names (migrated to the current schema).
pub async fn open_catalog(config: &Config) -> Result<Arc<dyn Catalog>, BoxError> {
    Ok(match config.catalog() {
        CatalogUrl::Postgres(url) => {
            Arc::new(PgCatalog::open(&url).await.map_err(|e| {
                format!("cannot open the catalog at {}: {e}", redact_password(&url))
            })?)
        }
        CatalogUrl::Sqlite(path) => Arc::new(
            SqliteCatalog::open(&path)
                .await
                .map_err(|e| format!("cannot open the catalog at {}: {e}", path.display()))?,
        ),
    })
}

/// Locks the data directory for this process's life (an advisory lock on `DATA_DIR/lock`,
/// released by the kernel however the process ends): a second `kinescope serve` on the same
/// directory would append to the same fragment log and cut each other's records as torn
/// tails. `fsck` does not take it: it only reads, and deletes nothing younger than the grace.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, BoxError> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "the data directory {} is in use by another kinescope serve (it holds {})",
            dir.display(),
            path.display()
        )
        .into()),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(format!("cannot lock {}: {e}", path.display()).into())
        }
    }
}

/// `kinescope fsck`: checks the catalog against the stored bytes, prints a summary; with
/// `repair`, deletes orphan objects older than `--orphan-grace`. Whether all is well (or repaired).
pub async fn fsck(config: Config, repair: bool) -> Result<bool, BoxError> {
    let grace_secs = config.orphan_grace;
    let catalog = open_catalog(&config).await?;
    let store_url = config.store();
    let store = store_url
        .open()
        .map_err(|e| format!("cannot open the store {store_url}: {e}"))?;
    let grace_ms = i64::try_from(grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let report = kinescope_archive::fsck(
        catalog.as_ref(),
        store.as_ref(),
        &config.data_dir.join("log"),
        SystemClock.now(),
        grace_ms,
        repair,
    )
    .await?;
    println!(
        "{} streams, {} fragments, {} objects in {store_url}",
        report.streams, report.fragments, report.objects
    );
    let list = |what: &str, items: &[String]| {
        println!("{what}: {}", items.len());
        for i in items.iter().take(20) {
            println!("  {i}");
        }
        if items.len() > 20 {
            println!("  … and {} more", items.len() - 20);
        }
    };
    list("fragments with missing or short bytes", &report.missing);
    list(
        "fragments whose track header is not their stream's",
        &report.bad_headers,
    );
    list("fragments out of server-time order", &report.out_of_order);
    list(
        &format!("orphan objects (no fragment points into them, older than {grace_secs} s)"),
        &report.orphans,
    );
    if repair {
        println!("orphan objects deleted: {}", report.orphans_removed);
    }
    println!(
        "unreferenced objects younger than {grace_secs} s (left alone): {}",
        report.recent_unreferenced
    );
    Ok(!report.has_problems())
}

pub async fn run(mut config: Config) -> Result<(), BoxError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    // Absolute, so that the printed paths work from any directory.
    config.data_dir = std::fs::canonicalize(&config.data_dir)?;
    let _lock = lock_data_dir(&config.data_dir)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let catalog = open_catalog(&config).await?;
    let store_url = config.store();
    let store = store_url
        .open()
        .map_err(|e| format!("cannot open the store {store_url}: {e}"))?;
    let log_dir = config.data_dir.join("log");
    // Only sealed segments are ever removed: under a storage budget, small ones.
    let segment_bytes = config.max_storage.map_or(SEGMENT_BYTES, |max| {
        (max / 8).clamp(64 << 10, SEGMENT_BYTES)
    });
    let (log, recovery) = FragmentLog::open_with(&log_dir, segment_bytes)
        .map_err(|e| format!("cannot open the fragment log {}: {e}", log_dir.display()))?;
    let durability = if config.persist_to_store {
        Durability::Store
    } else {
        Durability::Log
    };
    tracing::info!(store = %store_url, ?durability, log_segments = recovery.segments,
        torn_bytes_cut = recovery.truncated, "fragment store and log");
    let archive = Arc::new(Archive::open(catalog.clone(), store, log, durability).await?);
    spawn_packer(
        archive.clone(),
        clock.clone(),
        config.pack.clone(),
        Duration::from_secs(1),
    );
    spawn_lifecycle(
        archive.clone(),
        clock.clone(),
        LifecyclePolicy {
            interval: Duration::from_secs(config.lifecycle_seconds),
            max_bytes: config.max_storage,
            orphan_grace: Duration::from_secs(config.orphan_grace),
        },
    );

    let (auth, shown) = if config.allow_anonymous {
        (Auth::Anonymous, Shown::Anonymous)
    } else if config.credentials.is_empty() {
        let path = config.credentials_file();
        let (pair, new) = load_or_generate_credentials(&path)?;
        let keys = KeyStore::new([(pair.access_key.clone(), pair.secret_key.clone())]);
        (Auth::SigV4(keys), Shown::Generated { pair, path, new })
    } else {
        let ids = config
            .credentials
            .iter()
            .map(|k| k.access_key.clone())
            .collect();
        let keys = KeyStore::new(
            config
                .credentials
                .iter()
                .map(|k| (k.access_key.clone(), k.secret_key.clone())),
        );
        (Auth::SigV4(keys), Shown::Configured(ids))
    };

    // Every connection is a file descriptor: take all the process may have.
    let file_limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
        1024
    });
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| listener::default_max_connections(file_limit));
    let listener = listener::bind(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let bound = listener.local_addr()?;
    let endpoint = config.endpoint(bound);

    let tls = match &config.tls {
        TlsMode::Off => None,
        TlsMode::Files { cert, key } => {
            Some((tls::server_config(cert, key, config.alpn_h2)?, None))
        }
        TlsMode::Generated => {
            let sans = tls::subject_alt_names(bound.ip(), Some(url_host(&endpoint)));
            let today = clock.now().as_millis().div_euclid(86_400_000);
            let (chain, key) = tls::ensure_generated(&config.tls_dir(), &sans, today)?;
            Some((
                tls::server_config(&chain, &key, config.alpn_h2)?,
                Some(config.tls_dir().join("ca.pem")),
            ))
        }
    };

    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let upkeep = metrics.clone();
    let log_archive = archive.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for n in 0u64.. {
            tick.tick().await;
            metrics::counter!("kinescope_log_syncs_total").absolute(log_archive.log().syncs());
            if n % 5 == 0 {
                upkeep.run_upkeep();
            }
        }
    });

    let session_key = SessionKey::new(&load_or_generate_session_secret(
        &config.session_secret_file(),
    )?);
    let player = Arc::new(Player::new(
        archive.clone(),
        clock.clone(),
        session_key,
        config.playback_cache,
    ));
    let state = Arc::new(AppState {
        catalog,
        archive,
        player,
        writers: Arc::default(),
        clock,
        auth,
        region: config.region.clone(),
        account_id: config.account_id.clone(),
        endpoint: endpoint.clone(),
        shutting_down: AtomicBool::new(false),
        metrics: Some(metrics),
        ingest_idle_limit: Duration::from_secs(config.ingest_idle_limit_secs),
        getmedia_idle: Duration::from_secs(config.getmedia_idle_timeout_secs),
        live_budget: kinescope_ingest::LiveBudget::new(config.live_budget),
        limits: Limits::new(
            config.body_budget,
            Duration::from_secs(config.request_timeout_secs),
        ),
        max_producer_clock_ahead: Duration::from_secs(config.max_producer_clock_ahead_secs),
    });
    let app = http::router(state.clone());

    let ca_file = tls.as_ref().and_then(|(_, ca)| ca.clone());
    print_banner(&config, &endpoint, ca_file.as_deref(), &shown);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let grace = Duration::from_secs(config.shutdown_timeout_secs);
    tokio::spawn(shutdown_on_signal(stop, state));
    tracing::info!(max_connections, file_limit, "listening");
    listener::serve(
        listener,
        tls.map(|(server_config, _)| tokio_rustls::TlsAcceptor::from(server_config)),
        app,
        ListenerConfig {
            max_connections,
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            keepalive_timeout: Duration::from_secs(config.keepalive_timeout_secs),
        },
        stopped,
        grace,
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_on_signal(stop: tokio::sync::watch::Sender<bool>, state: Arc<AppState>) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: no new connections, finishing requests");
    state.shutting_down.store(true, Ordering::Relaxed);
    let _ = stop.send(true);
}

/// One block on stdout that a person can act on: where to connect, what to trust, how to sign.
fn print_banner(config: &Config, endpoint: &str, ca: Option<&std::path::Path>, shown: &Shown) {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: &str| out.push_str(&format!("  {k:<12} {v}\n"));
    out.push_str(&format!(
        "Kinescope {} is serving the Kinesis Video Streams API\n",
        env!("CARGO_PKG_VERSION")
    ));
    line(&mut out, "Endpoint:", endpoint);
    let ca_arg = match ca {
        Some(ca) => {
            line(&mut out, "Trust CA:", &ca.display().to_string());
            format!(" --ca-bundle {}", ca.display())
        }
        None => String::new(),
    };
    line(&mut out, "Region:", &config.region);
    line(
        &mut out,
        "Data dir:",
        &config.data_dir.display().to_string(),
    );
    let catalog = match config.catalog() {
        CatalogUrl::Postgres(url) => redact_password(&url),
        CatalogUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
    };
    line(&mut out, "Catalog:", &catalog);
    line(&mut out, "Store:", &config.store().to_string());
    let (ak, sk) = match shown {
        Shown::Generated { pair, path, new } => {
            line(&mut out, "Access key:", &pair.access_key);
            line(&mut out, "Secret key:", &pair.secret_key);
            let how = if *new {
                "generated now, stored in"
            } else {
                "from"
            };
            line(
                &mut out,
                "Credentials:",
                &format!("{how} {}", path.display()),
            );
            (pair.access_key.clone(), pair.secret_key.clone())
        }
        Shown::Configured(ids) => {
            line(
                &mut out,
                "Access keys:",
                &format!("{} (secrets as configured)", ids.join(", ")),
            );
            (ids[0].clone(), "YOUR_SECRET_KEY".into())
        }
        Shown::Anonymous => {
            line(&mut out, "Auth:", "ANONYMOUS: signatures are not checked");
            ("anonymous".into(), "anonymous".into())
        }
    };
    out.push_str("  Try:\n");
    out.push_str(&format!(
        "    AWS_ACCESS_KEY_ID={ak} AWS_SECRET_ACCESS_KEY={sk} aws --region {} --endpoint-url {endpoint}{ca_arg} kinesisvideo list-streams\n",
        config.region
    ));
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}
