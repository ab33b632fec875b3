//! TLS for the listener: the operator's certificate, or a local CA and server certificate
//! generated into `DATA_DIR/tls/` on first start (`ca.pem` is the file clients trust). The CA
//! persists; the server certificate is re-issued by it when the names it must cover change
//! (`--public-url`, `--listen`) or when it nears expiry.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::secrets::write_private;
use kinescope_api::civil;

const LEAF_DAYS: i64 = 397;
const RENEW_BEFORE_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS file {path}: {message}")]
    Pem { path: String, message: String },
    #[error("generating TLS certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What `ensure_generated` wrote or found in the TLS directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct LeafInfo {
    sans: Vec<String>,
    not_after_day: i64,
}

/// Makes sure `dir` holds a CA and a server certificate for `sans`, valid today (`today` in
/// days since the epoch). Returns the paths of the chain and key to serve.
pub fn ensure_generated(
    dir: &Path,
    sans: &[String],
    today: i64,
) -> Result<(std::path::PathBuf, std::path::PathBuf), TlsError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (ca_pem, ca_key_pem) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let (chain, key, info_path) = (
        dir.join("server.pem"),
        dir.join("server-key.pem"),
        dir.join("server.json"),
    );

    let ca_key = if ca_pem.exists() && ca_key_pem.exists() {
        let pem = std::fs::read_to_string(&ca_key_pem).map_err(io(&ca_key_pem))?;
        KeyPair::from_pem(&pem)?
    } else {
        let ca_key = KeyPair::generate()?;
        let cert = ca_params(&ca_key).self_signed(&ca_key)?;
        write_private(&ca_key_pem, ca_key.serialize_pem().as_bytes()).map_err(io(&ca_key_pem))?;
        std::fs::write(&ca_pem, cert.pem()).map_err(io(&ca_pem))?;
        let _ = std::fs::remove_file(&info_path);
        ca_key
    };

    let wanted = LeafInfo {
        sans: sans.to_vec(),
        not_after_day: today + LEAF_DAYS,
    };
    let current: Option<LeafInfo> = std::fs::read(&info_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let fresh = current
        .is_some_and(|c| c.sans == wanted.sans && c.not_after_day - RENEW_BEFORE_DAYS > today);
    if fresh && chain.exists() && key.exists() {
        return Ok((chain, key));
    }

    let mut params = CertificateParams::new(sans.to_vec())?;
    params.distinguished_name.push(
        DnType::CommonName,
        sans.first().map_or("localhost", |s| s.as_str()),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Kinescope");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let ((y0, m0, d0), (y1, m1, d1)) = (ymd(today - 1), ymd(wanted.not_after_day));
    params.not_before = rcgen::date_time_ymd(y0, m0, d0);
    params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    let leaf_key = KeyPair::generate()?;
    let ca_cert_pem = std::fs::read_to_string(&ca_pem).map_err(io(&ca_pem))?;
    let issuer = Issuer::new(ca_params(&ca_key), ca_key);
    let leaf = params.signed_by(&leaf_key, &issuer)?;
    write_private(&key, leaf_key.serialize_pem().as_bytes()).map_err(io(&key))?;
    std::fs::write(&chain, format!("{}{ca_cert_pem}", leaf.pem())).map_err(io(&chain))?;
    let info = serde_json::to_vec(&wanted).expect("serializable");
    std::fs::write(&info_path, info).map_err(io(&info_path))?;
    Ok((chain, key))
}

/// The names a generated certificate covers: loopback names, the listen address when it is a
/// specific one, and the host of the public URL.
pub fn subject_alt_names(listen: IpAddr, public_host: Option<&str>) -> Vec<String> {
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !listen.is_unspecified() {
        sans.push(listen.to_string());
    }
    if let Some(h) = public_host {
        sans.push(h.to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    sans.retain(|s| seen.insert(s.clone()));
    sans
}

/// A rustls server configuration from a PEM chain and key (HTTP/1.1 via ALPN).
/// With `h2`, HTTP/2 is offered by ALPN besides HTTP/1.1. It is off by default: libcurl-based
/// producers (the KVS C producer, kvssink) take HTTP/2 when offered, and then drop the
/// `transfer-encoding` and `connection` headers they signed (design/0010).
pub fn server_config(chain: &Path, key: &Path, h2: bool) -> Result<Arc<ServerConfig>, TlsError> {
    let pem_err = |path: &Path| {
        let path = path.display().to_string();
        move |e: rustls::pki_types::pem::Error| TlsError::Pem {
            path,
            message: e.to_string(),
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
        .map_err(pem_err(chain))?
        .collect::<Result<_, _>>()
        .map_err(pem_err(chain))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: chain.display().to_string(),
            message: "no certificate".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem_err(key))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

/// The parameters of the local CA. Rebuilt identically from its key on every start, which is
/// all an issuer needs (its name and key identifier derive from the key).
fn ca_params(key: &KeyPair) -> CertificateParams {
    let mut p = CertificateParams::default();
    let fp = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.public_key_raw());
    let id: String = fp.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    p.distinguished_name
        .push(DnType::CommonName, format!("Kinescope local CA {id}"));
    p.distinguished_name
        .push(DnType::OrganizationName, "Kinescope");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn ymd(day: i64) -> (i32, u8, u8) {
    let (y, m, d) = civil::civil_from_days(day);
    (y as i32, m as u8, d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_reissues_only_when_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let sans = subject_alt_names("127.0.0.1".parse().unwrap(), None);
        assert_eq!(sans, ["localhost", "127.0.0.1", "::1"]);
        let (chain, key) = ensure_generated(dir.path(), &sans, 20_000).unwrap();
        server_config(&chain, &key, false).unwrap();
        let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
        let leaf = std::fs::read(&chain).unwrap();

        ensure_generated(dir.path(), &sans, 20_001).unwrap();
        assert_eq!(std::fs::read(&chain).unwrap(), leaf, "same names: kept");

        let more = subject_alt_names("127.0.0.1".parse().unwrap(), Some("kvs.example.com"));
        ensure_generated(dir.path(), &more, 20_001).unwrap();
        assert_ne!(std::fs::read(&chain).unwrap(), leaf, "new name: re-issued");
        assert_eq!(
            std::fs::read(dir.path().join("ca.pem")).unwrap(),
            ca,
            "CA kept"
        );

        let before = std::fs::read(&chain).unwrap();
        ensure_generated(dir.path(), &more, 20_001 + LEAF_DAYS - 10).unwrap();
        assert_ne!(
            std::fs::read(&chain).unwrap(),
            before,
            "near expiry: re-issued"
        );
    }
}
