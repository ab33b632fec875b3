//! KVS-shaped error responses (spec §1.3): the status, `x-amzn-ErrorType` and a JSON message.
//! [`From<CatalogError>`] is the one place where internal failures become client errors;
//! internals are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kinescope_api::{ApiError, ErrorKind};
use kinescope_archive::{ArchiveError, CatalogError};
use kinescope_media::remux::RemuxError;
use kinescope_playback::PlaybackError;

/// An error on its way to the client.
#[derive(Debug)]
pub struct KvsError(pub ApiError);

impl KvsError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(ApiError::new(kind, message))
    }
}

impl From<ApiError> for KvsError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<CatalogError> for KvsError {
    fn from(e: CatalogError) -> Self {
        let kind = match &e {
            CatalogError::StreamNotFound(_) => ErrorKind::ResourceNotFound,
            CatalogError::StreamExists(_) => ErrorKind::ResourceInUse,
            CatalogError::VersionMismatch { .. } => ErrorKind::VersionMismatch,
            CatalogError::TooManyTags { .. } => ErrorKind::TagsPerResourceExceededLimit,
            CatalogError::RetentionOutOfRange { .. } => ErrorKind::InvalidArgument,
            CatalogError::Database(_)
            | CatalogError::Migration(_)
            | CatalogError::Corrupt { .. } => {
                tracing::error!(error = %e, "catalog failure");
                return Self::new(
                    ErrorKind::InternalFailure,
                    "Internal failure; see the server log.",
                );
            }
        };
        Self::new(kind, e.to_string())
    }
}

impl From<ArchiveError> for KvsError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Catalog(e) => e.into(),
            ArchiveError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                Self::new(
                    ErrorKind::InternalFailure,
                    "Internal failure; see the server log.",
                )
            }
        }
    }
}

impl From<PlaybackError> for KvsError {
    fn from(e: PlaybackError) -> Self {
        match e {
            PlaybackError::InvalidArgument(m) => Self::new(ErrorKind::InvalidArgument, m),
            PlaybackError::NotFound(m) => Self::new(ErrorKind::ResourceNotFound, m),
            PlaybackError::NoDataRetention(m) => Self::new(ErrorKind::NoDataRetention, m),
            PlaybackError::Token(e) => Self::new(ErrorKind::NotAuthorized, e.to_string()),
            PlaybackError::Media(e) => {
                let kind = match &e {
                    RemuxError::UnsupportedCodec { .. } => ErrorKind::UnsupportedStreamMediaType,
                    RemuxError::MissingCodecPrivateData { .. } => {
                        ErrorKind::MissingCodecPrivateData
                    }
                    RemuxError::InvalidCodecPrivateData { .. } => {
                        ErrorKind::InvalidCodecPrivateData
                    }
                    RemuxError::InvalidFrame(_) | RemuxError::Mkv(_) => {
                        ErrorKind::InvalidMediaFrame
                    }
                };
                Self::new(kind, e.to_string())
            }
            PlaybackError::Catalog(e) => e.into(),
            PlaybackError::Archive(e) => {
                tracing::error!(error = %e, "archive failure");
                Self::new(
                    ErrorKind::InternalFailure,
                    "Internal failure; see the server log.",
                )
            }
        }
    }
}

impl IntoResponse for KvsError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.kind.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, self.0.body()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.0.kind.name()),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn responses_carry_status_type_and_message() {
        let resp = KvsError::from(CatalogError::StreamNotFound("s1".into())).into_response();
        assert_eq!(resp.status(), 404);
        assert_eq!(
            resp.headers()["x-amzn-errortype"],
            "ResourceNotFoundException"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Message"], "stream s1 not found");
    }

    #[tokio::test]
    async fn internal_errors_hide_details() {
        let e = CatalogError::Corrupt {
            column: "arn",
            value: "secret-ish".into(),
        };
        let resp = KvsError::from(e).into_response();
        assert_eq!(resp.status(), 500);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("secret-ish"));
    }
}
