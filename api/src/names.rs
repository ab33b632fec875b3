//! Validated names and identifiers of the KVS control plane (patterns and lengths from
//! `spec/aws-models/kinesisvideo.json`, ARN format from spec §2). Each type can only hold a valid
//! value: parsing at the edge (serde or `parse`) is the only way to build one from a string.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ApiError;

/// Characters of stream and device names: `[a-zA-Z0-9_.-]`.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// `[a-zA-Z0-9_.-]+`, the stream and device name pattern.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_name_char)
}

/// `[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*`, the media type pattern.
pub(crate) fn is_media_type(s: &str) -> bool {
    s.split(',').all(|pair| {
        let mut parts = pair.split('/');
        let (Some(t), Some(st), None) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        !t.is_empty() && !st.is_empty() && t.chars().chain(st.chars()).all(is_mime_char)
    })
}

/// `[\w\-\.\+]`, one side of a `type/subtype` MIME pair.
fn is_mime_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+')
}

/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, the tag key and value alphabet.
pub(crate) fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
}

fn check_len(what: &str, s: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(ApiError::invalid_argument(format!(
            "{what} must be {min} to {max} characters long, got {n}"
        )));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates; the error is an `InvalidArgumentException`.
            pub fn parse(s: &str) -> Result<Self, ApiError> {
                let check: fn(&str) -> Result<(), ApiError> = $parse;
                check(s)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
            }
        }
    };
}

string_newtype!(
    /// A stream name: 1–256 characters of `[a-zA-Z0-9_.-]`. Safe in paths and object keys
    /// (`.` and `..` are refused too).
    StreamName,
    |s| {
        check_len("StreamName", s, 1, 256)?;
        if !is_name(s) || s == "." || s == ".." {
            return Err(ApiError::invalid_argument(format!(
                "StreamName '{s}' must match [a-zA-Z0-9_.-]+"
            )));
        }
        Ok(())
    }
);

string_newtype!(
    /// A device name: 1–128 characters of `[a-zA-Z0-9_.-]`.
    DeviceName,
    |s| {
        check_len("DeviceName", s, 1, 128)?;
        if !is_name(s) {
            return Err(ApiError::invalid_argument(format!(
                "DeviceName '{s}' must match [a-zA-Z0-9_.-]+"
            )));
        }
        Ok(())
    }
);

string_newtype!(
    /// A media type list such as `video/h264,audio/aac` (1–128 characters).
    MediaType,
    |s| {
        check_len("MediaType", s, 1, 128)?;
        let ok = is_media_type(s);
        if !ok {
            return Err(ApiError::invalid_argument(format!(
                "MediaType '{s}' must be type/subtype pairs separated by commas"
            )));
        }
        Ok(())
    }
);

string_newtype!(
    /// A KMS key id or ARN (1–2048 characters). Stored and returned; Kinescope does not encrypt
    /// with it.
    KmsKeyId,
    |s| check_len("KmsKeyId", s, 1, 2048)
);

string_newtype!(
    /// An opaque stream version: 1–64 characters of `[a-zA-Z0-9]`.
    Version,
    |s| {
        check_len("CurrentVersion", s, 1, 64)?;
        if !s.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ApiError::invalid_argument(format!(
                "CurrentVersion '{s}' must match [a-zA-Z0-9]+"
            )));
        }
        Ok(())
    }
);

string_newtype!(
    /// A tag key: 1–128 characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
    TagKey,
    |s| {
        check_len("tag key", s, 1, 128)?;
        if !s.chars().all(is_tag_char) {
            return Err(ApiError::invalid_argument(format!(
                "tag key '{s}' must match [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*"
            )));
        }
        Ok(())
    }
);

string_newtype!(
    /// A tag value: 0–256 characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
    TagValue,
    |s| {
        check_len("tag value", s, 0, 256)?;
        if !s.chars().all(is_tag_char) {
            return Err(ApiError::invalid_argument(format!(
                "tag value '{s}' must match [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*"
            )));
        }
        Ok(())
    }
);

string_newtype!(
    /// A fragment number: a decimal string of up to 128 digits. Kinescope issues fixed-width
    /// numbers, so their text order is their numeric order (spec §6).
    FragmentNumber,
    |s| {
        check_len("FragmentNumber", s, 1, 128)?;
        if !s.chars().all(|c| c.is_ascii_digit()) {
            return Err(ApiError::invalid_argument(format!("FragmentNumber '{s}' must match ^[0-9]+$")));
        }
        Ok(())
    }
);

/// A tag set, ordered by key.
pub type Tags = BTreeMap<TagKey, TagValue>;

/// A stream ARN: `arn:<partition>:kinesisvideo:<region>:<account>:stream/<name>/<creation-ms>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamArn {
    arn: String,
    name: StreamName,
}

impl StreamArn {
    /// Builds the ARN of a stream created at `creation_ms` (ms since the epoch).
    pub fn new(region: &str, account: &str, name: &StreamName, creation_ms: i64) -> Self {
        Self {
            arn: format!("arn:aws:kinesisvideo:{region}:{account}:stream/{name}/{creation_ms}"),
            name: name.clone(),
        }
    }

    /// Parses a stream ARN.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::invalid_argument(format!("'{s}' is not a valid stream ARN"));
        if s.is_empty() || s.len() > 1024 {
            return Err(bad());
        }
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(bad());
        };
        let lower_digit_dash = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if arn != "arn"
            || !lower_digit_dash(partition)
            || service != "kinesisvideo"
            || !lower_digit_dash(region)
            || account.is_empty()
            || !account.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let mut res = resource.split('/');
        let (Some("stream"), Some(name), Some(created), None) =
            (res.next(), res.next(), res.next(), res.next())
        else {
            return Err(bad());
        };
        if created.is_empty() || !created.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let name = StreamName::parse(name).map_err(|_| bad())?;
        Ok(Self {
            arn: s.to_owned(),
            name,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The stream name inside the ARN.
    pub fn stream_name(&self) -> &StreamName {
        &self.name
    }
}

impl fmt::Display for StreamArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

impl Serialize for StreamArn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.arn)
    }
}

/// How a request names a stream: exactly one of `StreamName` and `StreamARN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamRef {
    Name(StreamName),
    Arn(StreamArn),
}

impl StreamRef {
    /// From the two optional request fields; both or neither is an `InvalidArgumentException`.
    pub fn from_fields(name: Option<StreamName>, arn: Option<String>) -> Result<Self, ApiError> {
        match (name, arn) {
            (Some(n), None) => Ok(Self::Name(n)),
            (None, Some(a)) => Ok(Self::Arn(StreamArn::parse(&a)?)),
            (Some(_), Some(_)) => Err(ApiError::invalid_argument(
                "specify either StreamName or StreamARN, not both",
            )),
            (None, None) => Err(ApiError::invalid_argument(
                "either StreamName or StreamARN is required",
            )),
        }
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => write!(f, "{n}"),
            Self::Arn(a) => write!(f, "{a}"),
        }
    }
}

/// The `APIName` of GetDataEndpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiName {
    PutMedia,
    GetMedia,
    ListFragments,
    GetMediaForFragmentList,
    #[serde(rename = "GET_HLS_STREAMING_SESSION_URL")]
    GetHlsStreamingSessionUrl,
    #[serde(rename = "GET_DASH_STREAMING_SESSION_URL")]
    GetDashStreamingSessionUrl,
    GetClip,
    GetImages,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        assert!(StreamName::parse("cam-1_front.v2").is_ok());
        assert!(StreamName::parse(&"a".repeat(256)).is_ok());
        for bad in ["", "a b", "a/b", "..", ".", "ü", &"a".repeat(257)] {
            assert!(StreamName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn media_types() {
        assert!(MediaType::parse("video/h264").is_ok());
        assert!(MediaType::parse("video/h264,audio/aac").is_ok());
        for bad in [
            "video",
            "video/",
            "/h264",
            "video/h264,",
            "a/b/c",
            "video h264/x",
        ] {
            assert!(MediaType::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tags() {
        assert!(TagKey::parse("owner:team/a=b+c-d@e f").is_ok());
        assert!(TagKey::parse("ключ").is_ok());
        assert!(TagValue::parse("").is_ok());
        assert!(TagKey::parse("").is_err());
        assert!(TagKey::parse("a*b").is_err());
        assert!(TagValue::parse("tab\there").is_err());
    }

    #[test]
    fn arns_round_trip() {
        let name = StreamName::parse("s1").unwrap();
        let arn = StreamArn::new("us-west-2", "123456789012", &name, 1581494584992);
        assert_eq!(
            arn.as_str(),
            "arn:aws:kinesisvideo:us-west-2:123456789012:stream/s1/1581494584992"
        );
        let parsed = StreamArn::parse(arn.as_str()).unwrap();
        assert_eq!(parsed, arn);
        assert_eq!(parsed.stream_name(), &name);
        for bad in [
            "",
            "arn:aws:kinesis:us-west-2:1:stream/s1/1",
            "arn:aws:kinesisvideo:us-west-2:acct:stream/s1/1",
            "arn:aws:kinesisvideo:us-west-2:1:channel/s1",
            "arn:aws:kinesisvideo:us-west-2:1:stream/s 1/1",
            "arn:aws:kinesisvideo:us-west-2:1:stream/s1/x",
        ] {
            assert!(StreamArn::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stream_ref_needs_exactly_one() {
        let n = StreamName::parse("s").unwrap();
        assert!(StreamRef::from_fields(Some(n.clone()), None).is_ok());
        assert!(StreamRef::from_fields(None, None).is_err());
        assert!(
            StreamRef::from_fields(Some(n), Some("arn:aws:kinesisvideo:r:1:stream/s/1".into()))
                .is_err()
        );
    }

    #[test]
    fn api_names_use_the_model_spelling() {
        let n: ApiName = serde_json::from_str("\"GET_HLS_STREAMING_SESSION_URL\"").unwrap();
        assert_eq!(n, ApiName::GetHlsStreamingSessionUrl);
        let n: ApiName = serde_json::from_str("\"GET_MEDIA_FOR_FRAGMENT_LIST\"").unwrap();
        assert_eq!(n, ApiName::GetMediaForFragmentList);
        assert!(serde_json::from_str::<ApiName>("\"put_media\"").is_err());
    }
}
