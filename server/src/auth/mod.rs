//! Authentication of API requests: SigV4 against the configured keys, or nothing when the
//! operator explicitly allowed anonymous access (DESIGN.md convention 8).

use kinescope_api::sigv4;
use kinescope_api::{ApiError, ErrorKind, Timestamp};

pub use sigv4::{KeyStore, Payload, Preflight, Request};

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Every request must carry a valid SigV4 signature from one of these keys.
    SigV4(KeyStore),
    /// No signature is checked (`--allow-anonymous`).
    Anonymous,
}

impl Auth {
    /// Checks what needs no body (a well-formed signature from a known key, in the skew window,
    /// for this service): run before a body is read, so that strangers are not buffered. The
    /// result finishes the check once the body is read ([`verify`]); `None` when anonymous.
    pub fn preflight<'a>(
        &'a self,
        headers: &'a axum::http::HeaderMap,
        now: Timestamp,
    ) -> Result<Option<Preflight<'a>>, ApiError> {
        let Self::SigV4(keys) = self else {
            return Ok(None);
        };
        sigv4::preflight(headers, keys, now)
            .map(Some)
            .map_err(to_api)
    }
}

/// Checks the signature of `req`, whose headers passed [`Auth::preflight`]; the error is the
/// KVS-shaped 4xx to send.
pub fn verify(preflight: Option<Preflight<'_>>, req: &Request<'_>) -> Result<(), ApiError> {
    match preflight {
        None => Ok(()),
        Some(p) => p.verify(req).map(|_| ()).map_err(to_api),
    }
}

fn to_api(e: sigv4::AuthError) -> ApiError {
    let kind = match &e {
        sigv4::AuthError::Missing => ErrorKind::MissingAuthenticationToken,
        sigv4::AuthError::Incomplete(_) => ErrorKind::IncompleteSignature,
        sigv4::AuthError::UnknownAccessKey => ErrorKind::UnrecognizedClient,
        sigv4::AuthError::ContentHashMismatch(_) => ErrorKind::ContentSha256Mismatch,
        sigv4::AuthError::Mismatch
        | sigv4::AuthError::Expired { .. }
        | sigv4::AuthError::NotYetCurrent { .. }
        | sigv4::AuthError::WrongService => ErrorKind::InvalidSignature,
    };
    ApiError::new(kind, e.to_string())
}
