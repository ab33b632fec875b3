//! What every request handler shares: the injected catalog and clock, authentication, and the
//! identity of this server (region, account, endpoint).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kinescope_archive::{Archive, Catalog, Clock};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Auth;

#[derive(Debug)]
pub struct AppState {
    pub catalog: Arc<dyn Catalog>,
    /// Fragment store and numbering: where PutMedia makes fragments durable.
    pub archive: Arc<Archive>,
    /// HLS and DASH sessions and clips.
    pub player: Arc<kinescope_playback::Player>,
    /// The current PutMedia writer of each stream.
    pub writers: Arc<kinescope_ingest::Writers>,
    pub clock: Arc<dyn Clock>,
    pub auth: Auth,
    /// Region of the ARNs this server creates.
    pub region: String,
    pub account_id: String,
    /// The base URL GetDataEndpoint returns: scheme, host, port, no trailing slash.
    pub endpoint: String,
    /// Set when shutdown begins; `/readyz` then answers 503.
    pub shutting_down: AtomicBool,
    pub metrics: Option<PrometheusHandle>,
    /// A PutMedia request ends after this long without data (spec §3.4: 30 s).
    pub ingest_idle_limit: std::time::Duration,
    /// A GetMedia response ends after this long without a new fragment.
    pub getmedia_idle: std::time::Duration,
    /// What uploads may keep in memory of the fragments they receive, for live readers.
    pub live_budget: Arc<kinescope_ingest::LiveBudget>,
    /// Bounds on buffered request bodies.
    pub limits: crate::limits::Limits,
    /// A PutMedia fragment stamped further ahead of the server clock than this is refused.
    pub max_producer_clock_ahead: std::time::Duration,
}
