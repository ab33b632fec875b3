//! Request and response shapes of the archived-media APIs that read fragments
//! (`spec/aws-models/kinesis-video-archived-media.json`, spec §5.1–5.2), with the model's
//! constraints on the inputs.

use serde::{Deserialize, Serialize};

use crate::validation::{
    FRAGMENT_NUMBER, Input, Member, Pattern, RESOURCE_ARN, STREAM_NAME, Shape, Str,
};
use crate::{FragmentNumber, StreamName, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum FragmentSelectorType {
    #[serde(rename = "PRODUCER_TIMESTAMP")]
    ProducerTimestamp,
    #[serde(rename = "SERVER_TIMESTAMP")]
    ServerTimestamp,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TimestampRange {
    #[serde(rename = "StartTimestamp")]
    pub start_timestamp: Timestamp,
    #[serde(rename = "EndTimestamp")]
    pub end_timestamp: Timestamp,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FragmentSelector {
    #[serde(rename = "FragmentSelectorType")]
    pub fragment_selector_type: FragmentSelectorType,
    #[serde(rename = "TimestampRange")]
    pub timestamp_range: TimestampRange,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListFragmentsInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "MaxResults")]
    pub max_results: Option<u32>,
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
    #[serde(rename = "FragmentSelector")]
    pub fragment_selector: Option<FragmentSelector>,
}

impl Input for ListFragmentsInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamName", &STREAM_NAME),
        Member::optional("StreamARN", &RESOURCE_ARN),
        Member::optional(
            "MaxResults",
            &Shape::Integer {
                min: Some(1),
                max: Some(1000),
            },
        ),
        Member::optional(
            "NextToken",
            &Shape::String(Str {
                min: 1,
                max: 4096,
                pattern: Some(Pattern {
                    text: "[a-zA-Z0-9+/]+={0,2}",
                    matches: is_base64,
                }),
            }),
        ),
        Member::optional(
            "FragmentSelector",
            &Shape::Structure(&[
                Member::required(
                    "FragmentSelectorType",
                    &Shape::Enum(&["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"]),
                ),
                Member::required(
                    "TimestampRange",
                    &Shape::Structure(&[
                        Member::required("StartTimestamp", &Shape::Timestamp),
                        Member::required("EndTimestamp", &Shape::Timestamp),
                    ]),
                ),
            ]),
        ),
    ]);
}

/// `[a-zA-Z0-9+/]+={0,2}`, whole.
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fragment {
    #[serde(rename = "FragmentNumber")]
    pub fragment_number: FragmentNumber,
    #[serde(rename = "FragmentSizeInBytes")]
    pub fragment_size_in_bytes: u64,
    #[serde(rename = "ProducerTimestamp")]
    pub producer_timestamp: Timestamp,
    #[serde(rename = "ServerTimestamp")]
    pub server_timestamp: Timestamp,
    #[serde(rename = "FragmentLengthInMilliseconds")]
    pub fragment_length_in_milliseconds: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListFragmentsOutput {
    #[serde(rename = "Fragments")]
    pub fragments: Vec<Fragment>,
    #[serde(rename = "NextToken", skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GetMediaForFragmentListInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "Fragments")]
    pub fragments: Vec<FragmentNumber>,
}

impl Input for GetMediaForFragmentListInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamName", &STREAM_NAME),
        Member::optional("StreamARN", &RESOURCE_ARN),
        Member::required(
            "Fragments",
            &Shape::List {
                member: &FRAGMENT_NUMBER,
                min: 1,
                max: 1000,
            },
        ),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_in_kvs_words() {
        use crate::validation::parse;
        let e = parse::<ListFragmentsInput>(
            br#"{"StreamName":"s","MaxResults":0,"NextToken":"a=b","FragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":1}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "3 validation errors detected: Value '0' at 'maxResults' failed to satisfy constraint: \
             Member must have value greater than or equal to 1; Value 'a=b' at 'nextToken' failed \
             to satisfy constraint: Member must satisfy regular expression pattern: \
             [a-zA-Z0-9+/]+={0,2}; Value null at 'fragmentSelector.timestampRange.endTimestamp' \
             failed to satisfy constraint: Member must not be null"
        );
        let e = parse::<GetMediaForFragmentListInput>(br#"{"StreamName":"s","Fragments":[]}"#)
            .unwrap_err();
        assert_eq!(
            e.message,
            "1 validation error detected: Value '[]' at 'fragments' failed to satisfy constraint: \
             Member must have length greater than or equal to 1"
        );
        assert!(is_base64("QUJD") && is_base64("QUI=") && is_base64("QQ=="));
        assert!(!is_base64("Q===") && !is_base64("==") && !is_base64("QU-I"));
    }

    #[test]
    fn list_fragments_shapes() {
        let input: ListFragmentsInput = serde_json::from_str(
            r#"{"StreamName":"s","MaxResults":10,"FragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":1.5,"EndTimestamp":2}}}"#,
        )
        .unwrap();
        let sel = input.fragment_selector.unwrap();
        assert_eq!(
            sel.fragment_selector_type,
            FragmentSelectorType::ServerTimestamp
        );
        assert_eq!(sel.timestamp_range.start_timestamp.as_millis(), 1500);
        let out = ListFragmentsOutput {
            fragments: vec![Fragment {
                fragment_number: FragmentNumber::parse("0001").unwrap(),
                fragment_size_in_bytes: 5,
                producer_timestamp: Timestamp::from_millis(1_511_852_108_513),
                server_timestamp: Timestamp::from_millis(1_511_852_109_126),
                fragment_length_in_milliseconds: 2000,
            }],
            next_token: None,
        };
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"Fragments":[{"FragmentNumber":"0001","FragmentSizeInBytes":5,"ProducerTimestamp":1511852108.513,"ServerTimestamp":1511852109.126,"FragmentLengthInMilliseconds":2000}]}"#
        );
    }
}
