//! GetMedia's request shape and its constraints (`spec/aws-models/kinesis-video-media.json`,
//! spec §4).

use serde::Deserialize;

use crate::validation::{
    FRAGMENT_NUMBER, GET_MEDIA_ARN, Input, Member, Pattern, STREAM_NAME, Shape, Str,
};
use crate::{FragmentNumber, StreamName, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StartSelectorType {
    FragmentNumber,
    ServerTimestamp,
    ProducerTimestamp,
    Now,
    Earliest,
    ContinuationToken,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StartSelector {
    #[serde(rename = "StartSelectorType")]
    pub start_selector_type: StartSelectorType,
    #[serde(rename = "AfterFragmentNumber")]
    pub after_fragment_number: Option<FragmentNumber>,
    #[serde(rename = "StartTimestamp")]
    pub start_timestamp: Option<Timestamp>,
    /// The fragment number of the last fragment a reader received (Kinescope's tokens are
    /// fragment numbers).
    #[serde(rename = "ContinuationToken")]
    pub continuation_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GetMediaInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "StartSelector")]
    pub start_selector: StartSelector,
}

/// The model's `StartSelectorType` values.
const START_SELECTOR_TYPES: &[&str] = &[
    "FRAGMENT_NUMBER",
    "SERVER_TIMESTAMP",
    "PRODUCER_TIMESTAMP",
    "NOW",
    "EARLIEST",
    "CONTINUATION_TOKEN",
];

impl Input for GetMediaInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamName", &STREAM_NAME),
        Member::optional("StreamARN", &GET_MEDIA_ARN),
        Member::required(
            "StartSelector",
            &Shape::Structure(&[
                Member::required("StartSelectorType", &Shape::Enum(START_SELECTOR_TYPES)),
                Member::optional("AfterFragmentNumber", &FRAGMENT_NUMBER),
                Member::optional("StartTimestamp", &Shape::Timestamp),
                Member::optional(
                    "ContinuationToken",
                    &Shape::String(Str {
                        min: 1,
                        max: 128,
                        pattern: Some(Pattern {
                            text: "^[a-zA-Z0-9_\\.\\-]+$",
                            matches: |s| {
                                !s.is_empty()
                                    && s.bytes().all(|b| {
                                        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
                                    })
                            },
                        }),
                    }),
                ),
            ]),
        ),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_boto3_sends() {
        let i: GetMediaInput = serde_json::from_str(
            r#"{"StreamName": "test-stream", "StartSelector": {"StartSelectorType": "NOW"}}"#,
        )
        .unwrap();
        assert_eq!(i.start_selector.start_selector_type, StartSelectorType::Now);
        let i: GetMediaInput = serde_json::from_str(r#"{"StreamName":"s","StartSelector":{"StartSelectorType":"CONTINUATION_TOKEN","ContinuationToken":"0123"}}"#).unwrap();
        assert_eq!(i.start_selector.continuation_token.as_deref(), Some("0123"));
        assert!(serde_json::from_str::<GetMediaInput>(r#"{"StreamName":"s"}"#).is_err());
    }

    #[test]
    fn violations_in_kvs_words() {
        let e = crate::validation::parse::<GetMediaInput>(
            br#"{"StreamName": "s", "StartSelector": {"StartSelectorType": "BOGUS"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "1 validation error detected: Value 'BOGUS' at 'startSelector.startSelectorType' \
             failed to satisfy constraint: Member must satisfy enum value set: [FRAGMENT_NUMBER, \
             SERVER_TIMESTAMP, PRODUCER_TIMESTAMP, NOW, EARLIEST, CONTINUATION_TOKEN]"
        );
        let e = crate::validation::parse::<GetMediaInput>(br#"{"StreamName": "s"}"#).unwrap_err();
        assert_eq!(
            e.message,
            "1 validation error detected: Value null at 'startSelector' failed to satisfy \
             constraint: Member must not be null"
        );
        // Every selector type of the model parses.
        for t in START_SELECTOR_TYPES {
            let body =
                format!(r#"{{"StreamName":"s","StartSelector":{{"StartSelectorType":"{t}"}}}}"#);
            assert!(
                crate::validation::parse::<GetMediaInput>(body.as_bytes()).is_ok(),
                "{t}"
            );
        }
    }
}
