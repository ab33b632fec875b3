//! Authentication of API requests: SigV4 against the configured keys, or nothing when the
//! operator explicitly allowed anonymous access (DESIGN.md convention 8).

use kinescope_api::sigv4;
use kinescope_api::{ApiError, ErrorKind, Timestamp};

pub use sigv4::{KeyStore, Payload, Request};

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
    /// for this service): run before a body is read, so that strangers are not buffered.
    pub fn preflight(
        &self,
        headers: &axum::http::HeaderMap,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        let Self::SigV4(keys) = self else {
            return Ok(());
        };
        sigv4::preflight(headers, keys, now)
            .map(|_| ())
            .map_err(to_api)
    }

    /// Checks the request; the error is the KVS-shaped 4xx to send.
    pub fn check(&self, req: &Request<'_>, now: Timestamp) -> Result<(), ApiError> {
        let Self::SigV4(keys) = self else {
            return Ok(());
        };
        sigv4::verify(req, keys, now).map(|_| ()).map_err(to_api)
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
