//! KVS error codes and their HTTP status (spec §1.3 and §0.10). Every failure a client sees is
//! one [`ApiError`]: a kind (sent as `x-amzn-ErrorType`) and a human-readable message.

use std::fmt;

/// A KVS error name. [`ErrorKind::name`] is the `x-amzn-ErrorType` value and
/// [`ErrorKind::http_status`] the status, as the botocore models and the real service define them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidArgument,
    ResourceNotFound,
    ResourceInUse,
    VersionMismatch,
    ClientLimitExceeded,
    ConnectionLimitExceeded,
    AccountStreamLimitExceeded,
    TagsPerResourceExceededLimit,
    InvalidResourceFormat,
    NotAuthorized,
    AccessDenied,
    NoDataRetention,
    /// HLS, DASH, GetClip: the stream's tracks are not H.264/H.265 (+ AAC) or AAC alone.
    UnsupportedStreamMediaType,
    MissingCodecPrivateData,
    InvalidCodecPrivateData,
    /// GetClip: a stored frame could not be remuxed.
    InvalidMediaFrame,
    InvalidEndpoint,
    /// The body is not JSON at all (a JSON body of the wrong shape is `InvalidArgument`).
    Serialization,
    /// SigV4: the signature does not match, or is outside the clock-skew window.
    InvalidSignature,
    /// SigV4: the `Authorization` header is malformed or a required part is missing.
    IncompleteSignature,
    /// SigV4: no `Authorization` header at all.
    MissingAuthenticationToken,
    /// SigV4: the access key id is not configured.
    UnrecognizedClient,
    /// SigV4: `x-amz-content-sha256` is not the hash of the body received (spec §0.16).
    ContentSha256Mismatch,
    /// No operation at this path.
    UnknownOperation,
    /// An operation exists at this path, but not with this HTTP method.
    MethodNotAllowed,
    /// The request body exceeds the bound for this operation.
    RequestEntityTooLarge,
    /// The request's headers or body did not arrive in time.
    RequestTimeout,
    /// An operation of the KVS model that Kinescope does not implement yet.
    NotImplemented,
    /// The server is shutting down or not ready.
    ServiceUnavailable,
    /// An internal failure; the message never carries internals.
    InternalFailure,
}

impl ErrorKind {
    /// The error name sent in `x-amzn-ErrorType`.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidArgument => "InvalidArgumentException",
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::ResourceInUse => "ResourceInUseException",
            Self::VersionMismatch => "VersionMismatchException",
            Self::ClientLimitExceeded => "ClientLimitExceededException",
            Self::ConnectionLimitExceeded => "ConnectionLimitExceededException",
            Self::AccountStreamLimitExceeded => "AccountStreamLimitExceededException",
            Self::TagsPerResourceExceededLimit => "TagsPerResourceExceededLimitException",
            Self::InvalidResourceFormat => "InvalidResourceFormatException",
            Self::NotAuthorized => "NotAuthorizedException",
            Self::AccessDenied => "AccessDeniedException",
            Self::NoDataRetention => "NoDataRetentionException",
            Self::UnsupportedStreamMediaType => "UnsupportedStreamMediaTypeException",
            Self::MissingCodecPrivateData => "MissingCodecPrivateDataException",
            Self::InvalidCodecPrivateData => "InvalidCodecPrivateDataException",
            Self::InvalidMediaFrame => "InvalidMediaFrameException",
            Self::InvalidEndpoint => "InvalidEndpointException",
            Self::Serialization => "SerializationException",
            Self::InvalidSignature => "InvalidSignatureException",
            Self::IncompleteSignature => "IncompleteSignatureException",
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::ContentSha256Mismatch => "XAmzContentSHA256Mismatch",
            Self::UnknownOperation => "UnknownOperationException",
            Self::MethodNotAllowed => "MethodNotAllowedException",
            Self::RequestEntityTooLarge => "RequestEntityTooLargeException",
            Self::RequestTimeout => "RequestTimeoutException",
            Self::NotImplemented => "NotImplementedException",
            Self::ServiceUnavailable => "ServiceUnavailableException",
            Self::InternalFailure => "InternalFailure",
        }
    }

    /// The HTTP status code of this error.
    pub fn http_status(self) -> u16 {
        match self {
            Self::ResourceNotFound | Self::UnknownOperation => 404,
            Self::NotAuthorized => 401,
            Self::AccessDenied
            | Self::InvalidSignature
            | Self::IncompleteSignature
            | Self::MissingAuthenticationToken
            | Self::UnrecognizedClient => 403,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::RequestEntityTooLarge => 413,
            Self::InternalFailure => 500,
            Self::NotImplemented => 501,
            Self::ServiceUnavailable => 503,
            _ => 400,
        }
    }

    /// The JSON key of the message. The real service answers signature failures with a
    /// lower-case `message` and everything else with `Message` (spec §0.10).
    pub fn message_key(self) -> &'static str {
        match self {
            Self::InvalidSignature
            | Self::IncompleteSignature
            | Self::MissingAuthenticationToken
            | Self::UnrecognizedClient
            | Self::ContentSha256Mismatch => "message",
            _ => "Message",
        }
    }
}

/// A KVS-shaped error: what the client is told, and nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, message)
    }

    /// The JSON error body: `{"Message": "..."}` (or `message`, see [`ErrorKind::message_key`]).
    pub fn body(&self) -> String {
        let mut map = serde_json::Map::new();
        map.insert(self.kind.message_key().into(), self.message.clone().into());
        serde_json::Value::Object(map).to_string()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_model() {
        assert_eq!(ErrorKind::ResourceNotFound.http_status(), 404);
        assert_eq!(ErrorKind::ResourceInUse.http_status(), 400);
        assert_eq!(ErrorKind::VersionMismatch.http_status(), 400);
        assert_eq!(ErrorKind::NotAuthorized.http_status(), 401);
        assert_eq!(ErrorKind::InvalidSignature.http_status(), 403);
    }

    #[test]
    fn signature_errors_use_lower_case_message() {
        let e = ApiError::new(ErrorKind::InvalidSignature, "nope");
        assert_eq!(e.body(), r#"{"message":"nope"}"#);
        let e = ApiError::not_found("gone");
        assert_eq!(e.body(), r#"{"Message":"gone"}"#);
    }
}
