//! `kinescope serve` configuration: command-line flags, `KINESCOPE_*` environment variables and
//! a TOML file, in that order of precedence, over embedded defaults. The flag names are a
//! contract operators' scripts rely on (README, "Configuration").

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};
use kinescope_archive::{PackPolicy, StoreUrl};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "kinescope",
    version,
    about = "A self-hosted, KVS-compatible video stream server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: control plane, ingest and playback on one listener.
    Serve(Box<ServeArgs>),
    /// Run N cameras uploading real H.264 to a server through the resilient uploader (load
    /// tests).
    Simulate(Box<SimulateArgs>),
    /// Upload an MKV file, or an MKV stream on stdin, to a stream of any KVS-compatible
    /// server: re-fragmented at key frames, every fragment PERSISTED exactly once, reconnecting
    /// as needed. Exits 0 only when every fragment was PERSISTED.
    Put(Box<PutArgs>),
    /// Check that the catalog and the stored fragments agree (safe while the server runs);
    /// exits 1 on problems it did not repair.
    Fsck(Box<FsckArgs>),
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Where the data is: the same flags, environment and file as `serve`.
    #[command(flatten)]
    pub server: ServeArgs,
    /// Delete objects that no fragment points into and are older than --orphan-grace.
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The server's control-plane endpoint, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    pub endpoint: String,
    #[arg(long)]
    pub stream: String,
    /// Create the stream (retention 24 hours) if it does not exist.
    #[arg(long)]
    pub create: bool,
    /// CA file to trust for https.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_key: String,
    #[arg(long, env = "AWS_REGION", default_value = "us-west-2")]
    pub region: String,
    /// Send each fragment when its media has been played in real time since the start (as a
    /// camera would), instead of as fast as the server accepts.
    #[arg(long)]
    pub realtime: bool,
    /// A new fragment at the first key frame this many milliseconds after the current one's
    /// start (0: at every key frame).
    #[arg(long, default_value_t = 0)]
    pub fragment_ms: u64,
    /// Fragments not yet PERSISTED kept in memory at most, in MiB (the input waits beyond).
    #[arg(long, default_value_t = 256)]
    pub buffer_mib: u64,
    /// Give up after this many seconds without a fragment PERSISTED.
    #[arg(long, default_value_t = 300)]
    pub give_up_after: u64,
    /// Keep every fragment on disk here (under the stream's name) until it is PERSISTED: what
    /// a killed or restarted `put` had not uploaded is uploaded first by the next one.
    #[arg(long)]
    pub buffer_dir: Option<PathBuf>,
    /// The disk buffer's size in MiB; beyond it the oldest fragments are dropped (and counted).
    #[arg(long, default_value_t = 1024)]
    pub buffer_dir_mib: u64,
    /// What INPUT holds: MKV/WebM, or an H.264 or H.265 Annex-B elementary stream (then
    /// --fps is needed; frames are timed in presentation order, B-frames included).
    #[arg(long, value_enum, default_value_t = InputFormat::Mkv)]
    pub format: InputFormat,
    /// Frames per second of an elementary stream.
    #[arg(long)]
    pub fps: Option<f64>,
    /// Metadata every fragment carries (NAME=VALUE, up to 10); GetMedia returns it with each
    /// fragment.
    #[arg(long = "tag", value_name = "NAME=VALUE")]
    pub tags: Vec<String>,
    /// An MKV/WebM file or elementary stream, or - to read it from stdin.
    pub input: PathBuf,
}

/// `kinescope put --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Mkv,
    H264,
    H265,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The server, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    pub endpoint: String,
    /// CA file to trust for https.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_key: String,
    #[arg(long, default_value = "us-west-2")]
    pub region: String,
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Stream names are PREFIX-INDEX.
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// Bits per second per stream (frames are padded up to it; the video itself is about
    /// 250 kbit/s).
    #[arg(long, default_value_t = 2_000_000)]
    pub bitrate: u64,
    /// One fragment (key-frame group) per this many ms; at most 250 frames.
    #[arg(long, default_value_t = 1000)]
    pub fragment_ms: u64,
    #[arg(long, default_value_t = 25)]
    pub fps: u32,
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
    /// Seconds of fragments a device holds while its upload cannot keep up; beyond that it
    /// drops new fragments (counted).
    #[arg(long, default_value_t = 30)]
    pub buffer_secs: u64,
    /// A device gives up after this many seconds without a fragment PERSISTED.
    #[arg(long, default_value_t = 60)]
    pub give_up_after: u64,
    /// Print the report as one JSON object (for benchmarks) instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Live GetMedia viewers per stream (StartSelector NOW, opened before the upload starts).
    #[arg(long, default_value_t = 0)]
    pub viewers: usize,
    /// LIVE HLS viewers in all, spread over the streams; each starts after its stream's first
    /// PERSISTED ACK and plays as hls.js does (fMP4).
    #[arg(long, default_value_t = 0)]
    pub hls_viewers: usize,
    /// How HLS viewers reload the media playlist: `poll` (a target duration after a change,
    /// half of one otherwise, as hls.js) or `block` (at once, with `_HLS_msn`).
    #[arg(long, value_enum, default_value_t = HlsReload::Poll)]
    pub hls_reload: HlsReload,
}

/// `--hls-reload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HlsReload {
    Poll,
    Block,
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys as the flags, with `_` for `-`).
    #[arg(long, env = "KINESCOPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the catalog, media, TLS material and generated credentials live.
    #[arg(long, env = "KINESCOPE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where fragment bytes live: file:///PATH (default DATA_DIR/media), memory:// (tests) or
    /// s3://BUCKET/PREFIX?endpoint=URL&region=R&allow_http=BOOL&path_style=BOOL (credentials
    /// from the AWS environment variables).
    #[arg(long, env = "KINESCOPE_STORE")]
    pub store: Option<String>,
    /// ACK PERSISTED only once a fragment is in the store, not after the local fragment log's
    /// sync (for nodes without a durable local disk; one object per fragment).
    #[arg(long, env = "KINESCOPE_PERSIST_TO_STORE", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_missing_value = "true")]
    pub persist_to_store: Option<bool>,
    /// Packing: a stream's fragments move from the local fragment log into one object per this
    /// many seconds of media (and a stream quiet this long has its last ones packed).
    #[arg(long, env = "KINESCOPE_PACK_SECONDS")]
    pub pack_seconds: Option<u64>,
    /// Packing: an object holds at most this many bytes.
    #[arg(long, env = "KINESCOPE_PACK_BYTES")]
    pub pack_bytes: Option<u64>,
    /// Seconds between retention passes (fragments older than their stream's retention go).
    #[arg(long, env = "KINESCOPE_RETENTION_INTERVAL")]
    pub retention_interval: Option<u64>,
    /// Bytes of fragments kept across all streams; beyond it the oldest go first.
    #[arg(long, env = "KINESCOPE_MAX_STORAGE")]
    pub max_storage: Option<u64>,
    /// Seconds an object no fragment points into is left alone (default 3600): it may be a
    /// packed run whose fragments have not moved to it yet. Older ones are crash leftovers,
    /// deleted by the server (swept at start, then once per this period) and `fsck --repair`.
    #[arg(long, env = "KINESCOPE_ORPHAN_GRACE")]
    pub orphan_grace: Option<u64>,
    /// The catalog: sqlite://PATH (default DATA_DIR/catalog.db) or postgres://… (query keys
    /// max_connections, acquire_timeout and statement_timeout set the pool).
    #[arg(long, env = "KINESCOPE_CATALOG")]
    pub catalog: Option<String>,
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, env = "KINESCOPE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The URL clients reach this server at; GetDataEndpoint returns it.
    #[arg(long, env = "KINESCOPE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// PEM certificate chain to serve instead of the generated one.
    #[arg(long, env = "KINESCOPE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "KINESCOPE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (e.g. behind a TLS-terminating proxy).
    #[arg(long, env = "KINESCOPE_NO_TLS", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_missing_value = "true", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub no_tls: Option<bool>,
    /// Access key id clients sign with.
    #[arg(long, env = "KINESCOPE_ACCESS_KEY", requires = "secret_key")]
    pub access_key: Option<String>,
    /// Secret access key of --access-key.
    #[arg(
        long,
        env = "KINESCOPE_SECRET_KEY",
        requires = "access_key",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// Region in stream ARNs.
    #[arg(long, env = "KINESCOPE_REGION")]
    pub region: Option<String>,
    /// 12-digit account id in stream ARNs.
    #[arg(long, env = "KINESCOPE_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Accept requests without checking signatures.
    #[arg(long, env = "KINESCOPE_ALLOW_ANONYMOUS", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_missing_value = "true")]
    pub allow_anonymous: Option<bool>,
    /// Allow --allow-anonymous on a non-loopback address.
    #[arg(long, env = "KINESCOPE_INSECURE_ALLOW_ANONYMOUS_REMOTE", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_missing_value = "true")]
    pub insecure_allow_anonymous_remote: Option<bool>,
    /// Seconds in-flight requests get to finish on SIGINT/SIGTERM.
    #[arg(long, env = "KINESCOPE_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<u64>,
    /// Seconds a PutMedia request may send nothing before it is ended (KVS: 30).
    #[arg(long, env = "KINESCOPE_INGEST_IDLE_LIMIT")]
    pub ingest_idle_limit: Option<u64>,
    /// Seconds a GetMedia response waits for a new fragment before it ends (KVS: 3; the AWS
    /// SDKs' stalled-stream protection fails a read that is silent for 5 s).
    #[arg(long, env = "KINESCOPE_GETMEDIA_IDLE_TIMEOUT")]
    pub getmedia_idle_timeout: Option<u64>,
    /// Most concurrent connections (default: from the file limit); at the cap, the oldest
    /// connection without a request in progress is closed to admit a new one.
    #[arg(long, env = "KINESCOPE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds for a TLS handshake, for a request's headers, and for a JSON request body.
    #[arg(long, env = "KINESCOPE_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Seconds a kept-alive connection may wait for its next request.
    #[arg(long, env = "KINESCOPE_KEEPALIVE_TIMEOUT")]
    pub keepalive_timeout: Option<u64>,
    /// Bytes of JSON request bodies buffered at once across the server.
    #[arg(long, env = "KINESCOPE_BODY_BUDGET")]
    pub body_budget: Option<usize>,
    /// Bytes of fragments being received that uploads may keep in memory for live readers.
    #[arg(long, env = "KINESCOPE_LIVE_BUDGET")]
    pub live_budget: Option<usize>,
    /// Bytes of recently read fragments HLS, DASH and clips keep in memory for other viewers.
    #[arg(long, env = "KINESCOPE_PLAYBACK_CACHE")]
    pub playback_cache: Option<u64>,
    /// Offer HTTP/2 by ALPN over TLS (off: libcurl-based producers would take it and break).
    #[arg(long, env = "KINESCOPE_ALPN_H2", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_missing_value = "true")]
    pub alpn_h2: Option<bool>,
    /// Seconds a fragment's producer timestamp may be ahead of the server clock (else 4007).
    #[arg(long, env = "KINESCOPE_MAX_PRODUCER_CLOCK_AHEAD")]
    pub max_producer_clock_ahead: Option<u64>,
}

/// The configuration file: the same keys as the flags, plus several key pairs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub persist_to_store: Option<bool>,
    pub pack_seconds: Option<u64>,
    pub pack_bytes: Option<u64>,
    pub retention_interval: Option<u64>,
    pub max_storage: Option<u64>,
    pub orphan_grace: Option<u64>,
    pub catalog: Option<String>,
    pub listen: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub no_tls: Option<bool>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub allow_anonymous: Option<bool>,
    pub insecure_allow_anonymous_remote: Option<bool>,
    pub shutdown_timeout: Option<u64>,
    pub ingest_idle_limit: Option<u64>,
    pub getmedia_idle_timeout: Option<u64>,
    pub max_connections: Option<usize>,
    pub request_timeout: Option<u64>,
    pub keepalive_timeout: Option<u64>,
    pub body_budget: Option<usize>,
    pub live_budget: Option<usize>,
    pub playback_cache: Option<u64>,
    pub alpn_h2: Option<bool>,
    pub max_producer_clock_ahead: Option<u64>,
    #[serde(default)]
    pub credentials: Vec<KeyPair>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPair {
    pub access_key: String,
    pub secret_key: String,
}

/// How far ahead of the server clock a producer timestamp may be, by default: SigV4's clock-skew
/// allowance (±5 minutes), so a producer that stamps fragments with the clock it signs with is
/// never refused, while a wrong clock poisons a stream for at most this long (README).
const DEFAULT_MAX_PRODUCER_CLOCK_AHEAD_SECS: u64 = 300;

/// Where TLS material comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Generated into `DATA_DIR/tls/` on first start.
    Generated,
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    Off,
}

/// Which database holds the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogUrl {
    Sqlite(PathBuf),
    /// A `postgres://` URL as given (pool settings in its query).
    Postgres(String),
}

impl CatalogUrl {
    fn parse(url: &str) -> Result<Self, ConfigError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(ConfigError::Invalid(
                    "--catalog sqlite:// needs a path".into(),
                ));
            }
            return Ok(Self::Sqlite(path.into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            kinescope_archive::PgPoolSettings::from_url(url).map_err(ConfigError::Invalid)?;
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(ConfigError::Invalid(format!(
            "--catalog must be sqlite://PATH or postgres://…, not '{}'",
            redact_password(url)
        )))
    }
}

/// `url` with the password of its user info, if any, replaced by `***` (for logs and the banner).
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `None`: `DATA_DIR/media` (see [`Config::store`]).
    pub store: Option<StoreUrl>,
    pub persist_to_store: bool,
    pub pack: PackPolicy,
    pub lifecycle_seconds: u64,
    pub max_storage: Option<u64>,
    /// Seconds before an unreferenced object counts as an orphan.
    pub orphan_grace: u64,
    /// `None`: `DATA_DIR/catalog.db` (see [`Config::catalog`]).
    pub catalog: Option<CatalogUrl>,
    pub listen: SocketAddr,
    /// `--public-url` without its trailing slash, if given.
    pub public_url: Option<String>,
    pub tls: TlsMode,
    /// Configured key pairs (flags/env/file); empty means "generate or load DATA_DIR/credentials".
    pub credentials: Vec<KeyPair>,
    pub region: String,
    pub account_id: String,
    pub allow_anonymous: bool,
    pub shutdown_timeout_secs: u64,
    pub ingest_idle_limit_secs: u64,
    pub getmedia_idle_timeout_secs: u64,
    /// `None`: derived from the file limit at start.
    pub max_connections: Option<usize>,
    pub request_timeout_secs: u64,
    pub keepalive_timeout_secs: u64,
    pub body_budget: usize,
    pub live_budget: usize,
    pub playback_cache: u64,
    pub alpn_h2: bool,
    pub max_producer_clock_ahead_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Merges flags (and their environment variables) over the file over the defaults.
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => FileConfig::default(),
        };
        let invalid = |m: String| Err(ConfigError::Invalid(m));

        let tls_cert = args.tls_cert.or(file.tls_cert);
        let tls_key = args.tls_key.or(file.tls_key);
        let no_tls = args.no_tls.or(file.no_tls).unwrap_or(false);
        let tls = match (no_tls, tls_cert, tls_key) {
            (true, None, None) => TlsMode::Off,
            (true, _, _) => return invalid("--no-tls conflicts with --tls-cert/--tls-key".into()),
            (false, Some(cert), Some(key)) => TlsMode::Files { cert, key },
            (false, None, None) => TlsMode::Generated,
            (false, _, _) => return invalid("--tls-cert and --tls-key go together".into()),
        };

        let mut credentials = Vec::new();
        match (
            args.access_key.or(file.access_key),
            args.secret_key.or(file.secret_key),
        ) {
            (Some(access_key), Some(secret_key)) => credentials.push(KeyPair {
                access_key,
                secret_key,
            }),
            (None, None) => {}
            _ => return invalid("--access-key and --secret-key go together".into()),
        }
        credentials.extend(file.credentials);
        for pair in &credentials {
            if pair.access_key.is_empty()
                || pair.secret_key.is_empty()
                || pair.access_key.contains(['/', ' ', ','])
            {
                return invalid(format!(
                    "access key '{}' is empty or contains '/', ' ' or ',', or its secret is empty",
                    pair.access_key
                ));
            }
        }

        let region = args
            .region
            .or(file.region)
            .unwrap_or_else(|| "us-west-2".into());
        let region_ok = !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !region_ok {
            return invalid(format!("region '{region}' must match [a-z0-9-]+"));
        }
        let account_id = args
            .account_id
            .or(file.account_id)
            .unwrap_or_else(|| "000000000000".into());
        if account_id.len() != 12 || !account_id.chars().all(|c| c.is_ascii_digit()) {
            return invalid(format!("account id '{account_id}' must be 12 digits"));
        }

        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| ([127, 0, 0, 1], 8443).into());
        let allow_anonymous = args
            .allow_anonymous
            .or(file.allow_anonymous)
            .unwrap_or(false);
        let remote_ok = args
            .insecure_allow_anonymous_remote
            .or(file.insecure_allow_anonymous_remote)
            .unwrap_or(false);
        if allow_anonymous && !listen.ip().is_loopback() && !remote_ok {
            return invalid(format!(
                "refusing anonymous access on non-loopback address {listen}; \
                 add --insecure-allow-anonymous-remote if you really mean it"
            ));
        }

        let catalog = args
            .catalog
            .or(file.catalog)
            .map(|url| CatalogUrl::parse(&url))
            .transpose()?;

        let public_url = args
            .public_url
            .or(file.public_url)
            .map(|u| normalize_url(&u))
            .transpose()?;

        let store = match args.store.or(file.store) {
            Some(url) => Some(StoreUrl::parse(&url).map_err(ConfigError::Invalid)?),
            None => None,
        };

        Ok(Self {
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| "kinescope-data".into()),
            store,
            persist_to_store: args
                .persist_to_store
                .or(file.persist_to_store)
                .unwrap_or(false),
            pack: {
                let defaults = PackPolicy::default();
                let seconds = args.pack_seconds.or(file.pack_seconds);
                let max_ms = seconds.map_or(defaults.max_duration_ms, |s| s.max(1) * 1000);
                PackPolicy {
                    max_duration_ms: max_ms,
                    max_age_ms: max_ms,
                    max_bytes: args
                        .pack_bytes
                        .or(file.pack_bytes)
                        .unwrap_or(defaults.max_bytes)
                        .max(1),
                    ..defaults
                }
            },
            lifecycle_seconds: args
                .retention_interval
                .or(file.retention_interval)
                .unwrap_or(60)
                .max(1),
            max_storage: args.max_storage.or(file.max_storage),
            orphan_grace: args.orphan_grace.or(file.orphan_grace).unwrap_or(3600),
            catalog,
            listen,
            public_url,
            tls,
            credentials,
            region,
            account_id,
            allow_anonymous,
            shutdown_timeout_secs: args
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .unwrap_or(30),
            ingest_idle_limit_secs: args
                .ingest_idle_limit
                .or(file.ingest_idle_limit)
                .unwrap_or(30),
            getmedia_idle_timeout_secs: args
                .getmedia_idle_timeout
                .or(file.getmedia_idle_timeout)
                .unwrap_or(3),
            max_connections: args.max_connections.or(file.max_connections),
            request_timeout_secs: args.request_timeout.or(file.request_timeout).unwrap_or(10),
            keepalive_timeout_secs: args
                .keepalive_timeout
                .or(file.keepalive_timeout)
                .unwrap_or(60),
            body_budget: args.body_budget.or(file.body_budget).unwrap_or(32 << 20),
            live_budget: args.live_budget.or(file.live_budget).unwrap_or(256 << 20),
            playback_cache: args
                .playback_cache
                .or(file.playback_cache)
                .unwrap_or(64 << 20),
            alpn_h2: args.alpn_h2.or(file.alpn_h2).unwrap_or(false),
            max_producer_clock_ahead_secs: args
                .max_producer_clock_ahead
                .or(file.max_producer_clock_ahead)
                .unwrap_or(DEFAULT_MAX_PRODUCER_CLOCK_AHEAD_SECS),
        })
    }

    /// The URL clients use: `--public-url`, or one derived from the bound address.
    pub fn endpoint(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let scheme = if self.tls == TlsMode::Off {
            "http"
        } else {
            "https"
        };
        let host = match bound.ip() {
            ip if ip.is_unspecified() => "localhost".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("{scheme}://{host}:{}", bound.port())
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.data_dir.join("credentials")
    }

    /// The secret that signs HLS/DASH session tokens.
    pub fn session_secret_file(&self) -> PathBuf {
        self.data_dir.join("session-secret")
    }

    /// The catalog's database, with the default resolved against the data directory.
    pub fn catalog(&self) -> CatalogUrl {
        self.catalog
            .clone()
            .unwrap_or_else(|| CatalogUrl::Sqlite(self.data_dir.join("catalog.db")))
    }

    /// Where fragment bytes live: `--store`, else `file://DATA_DIR/media`.
    pub fn store(&self) -> StoreUrl {
        self.store
            .clone()
            .unwrap_or_else(|| StoreUrl::File(self.data_dir.join("media")))
    }
}

/// `scheme://host[:port]` with no path; a trailing `/` is dropped.
fn normalize_url(url: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim_end_matches('/');
    let bad = || {
        ConfigError::Invalid(format!(
            "--public-url '{url}' must be http(s)://host[:port]"
        ))
    };
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(bad)?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    Ok(trimmed.to_owned())
}

/// The host of a URL accepted by `normalize_url`, without brackets or port.
pub fn url_host(url: &str) -> &str {
    let authority = url.split_once("://").map_or(url, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// Reads a TOML key file written by [`write_private`].
pub fn read_key_pair(path: &Path) -> Result<KeyPair, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(["kinescope", "serve"].iter().chain(args)).unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("serve")
        };
        *a
    }

    #[test]
    fn defaults() {
        let c = Config::resolve(parse(&[])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("kinescope-data"));
        assert_eq!(c.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(c.tls, TlsMode::Generated);
        assert_eq!(c.region, "us-west-2");
        assert!(c.credentials.is_empty());
        assert!(!c.allow_anonymous);
        assert_eq!(c.endpoint(c.listen), "https://127.0.0.1:8443");
        assert_eq!(c.getmedia_idle_timeout_secs, 3, "KVS's GetMedia idle end");
        assert_eq!(c.max_producer_clock_ahead_secs, 300);
    }

    #[test]
    fn store_urls() {
        assert_eq!(Config::resolve(parse(&[])).unwrap().store, None);
        let c = Config::resolve(parse(&["--store", "memory://"])).unwrap();
        assert_eq!(c.store, Some(StoreUrl::Memory));
        let c = Config::resolve(parse(&["--store", "file:///srv/media"])).unwrap();
        assert_eq!(c.store, Some(StoreUrl::File("/srv/media".into())));
        let e = Config::resolve(parse(&["--store", "ftp://x"])).unwrap_err();
        assert!(e.to_string().contains("bad --store URL"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, "store = \"memory://\"\n").unwrap();
        let c = Config::resolve(parse(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.store, Some(StoreUrl::Memory));
    }

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(
            &file,
            r#"
            listen = "127.0.0.1:9000"
            region = "eu-central-1"
            no_tls = true
            max_producer_clock_ahead = 60
            access_key = "FILEKEY"
            secret_key = "filesecret"
            [[credentials]]
            access_key = "SECOND"
            secret_key = "s2"
            "#,
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let c = Config::resolve(parse(&["--config", f, "--region", "ap-south-1"])).unwrap();
        assert_eq!(c.region, "ap-south-1");
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.tls, TlsMode::Off);
        assert_eq!(c.endpoint(c.listen), "http://127.0.0.1:9000");
        assert_eq!(c.max_producer_clock_ahead_secs, 60);
        let keys: Vec<&str> = c
            .credentials
            .iter()
            .map(|k| k.access_key.as_str())
            .collect();
        assert_eq!(keys, ["FILEKEY", "SECOND"]);
        let c = Config::resolve(parse(&[
            "--config",
            f,
            "--access-key",
            "A",
            "--secret-key",
            "B",
        ]))
        .unwrap();
        assert_eq!(
            c.credentials[0],
            KeyPair {
                access_key: "A".into(),
                secret_key: "B".into()
            }
        );
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").unwrap();
        let err = Config::resolve(parse(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn anonymous_only_on_loopback_unless_insecure() {
        assert!(
            Config::resolve(parse(&["--allow-anonymous"]))
                .unwrap()
                .allow_anonymous
        );
        let remote = ["--allow-anonymous", "--listen", "0.0.0.0:8443"];
        assert!(Config::resolve(parse(&remote)).is_err());
        let insecure = [&remote[..], &["--insecure-allow-anonymous-remote"]].concat();
        assert!(Config::resolve(parse(&insecure)).is_ok());
    }

    #[test]
    fn public_url_is_normalized() {
        let c = Config::resolve(parse(&["--public-url", "https://kvs.example.com:443/"])).unwrap();
        assert_eq!(c.endpoint(c.listen), "https://kvs.example.com:443");
        assert_eq!(url_host("https://kvs.example.com:443"), "kvs.example.com");
        assert_eq!(url_host("http://[::1]:80"), "::1");
        assert_eq!(url_host("http://h"), "h");
        assert!(Config::resolve(parse(&["--public-url", "ftp://x"])).is_err());
        assert!(Config::resolve(parse(&["--public-url", "https://x/path"])).is_err());
    }

    #[test]
    fn catalog_urls() {
        let c = Config::resolve(parse(&["--data-dir", "d"])).unwrap();
        assert_eq!(c.catalog(), CatalogUrl::Sqlite("d/catalog.db".into()));
        let c = Config::resolve(parse(&["--catalog", "sqlite:///var/k.db"])).unwrap();
        assert_eq!(c.catalog(), CatalogUrl::Sqlite("/var/k.db".into()));
        let pg = "postgres://k:pw@db:5432/kinescope?max_connections=4";
        let c = Config::resolve(parse(&["--catalog", pg])).unwrap();
        assert_eq!(c.catalog(), CatalogUrl::Postgres(pg.into()));
        assert_eq!(
            redact_password(pg),
            "postgres://k:***@db:5432/kinescope?max_connections=4"
        );
        assert_eq!(redact_password("postgres://k@db/x"), "postgres://k@db/x");
        for bad in [
            "mysql://x",
            "sqlite://",
            "postgres://h/d?max_connections=none",
        ] {
            assert!(
                Config::resolve(parse(&["--catalog", bad])).is_err(),
                "{bad}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "catalog = \"postgres://h/d\"\n").unwrap();
        let c = Config::resolve(parse(&["--config", file.to_str().unwrap()])).unwrap();
        assert_eq!(c.catalog(), CatalogUrl::Postgres("postgres://h/d".into()));
    }

    #[test]
    fn tls_flags_pair_up() {
        assert!(Cli::try_parse_from(["kinescope", "serve", "--tls-cert", "c.pem"]).is_err());
        assert!(
            Cli::try_parse_from([
                "kinescope",
                "serve",
                "--no-tls",
                "--tls-cert",
                "c",
                "--tls-key",
                "k"
            ])
            .is_err()
        );
        let c = Config::resolve(parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"])).unwrap();
        assert_eq!(
            c.tls,
            TlsMode::Files {
                cert: "c.pem".into(),
                key: "k.pem".into()
            }
        );
    }
}
