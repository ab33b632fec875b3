//! Request and response shapes of the playback-session APIs of the archived-media model
//! (`spec/aws-models/kinesis-video-archived-media.json`; spec §5.3–5.5):
//! GetHLSStreamingSessionURL, GetDASHStreamingSessionURL and GetClip, with the model's
//! constraints on the inputs. What the values mean is the `playback` crate's business.

use serde::{Deserialize, Serialize};

use crate::archived::{FragmentSelector, FragmentSelectorType};
use crate::validation::{Input, Member, RESOURCE_ARN, STREAM_NAME, Shape};
use crate::{StreamName, Timestamp};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlaybackMode {
    #[default]
    Live,
    LiveReplay,
    OnDemand,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContainerFormat {
    #[default]
    FragmentedMp4,
    MpegTs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscontinuityMode {
    Always,
    Never,
    OnDiscontinuity,
}

/// `DisplayFragmentTimestamp` and `DisplayFragmentNumber`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Display {
    Always,
    #[default]
    Never,
}

/// `HLSTimestampRange` / `DASHTimestampRange`: both ends optional in the model; which are
/// required depends on the playback mode.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct SessionTimestampRange {
    #[serde(rename = "StartTimestamp")]
    pub start_timestamp: Option<Timestamp>,
    #[serde(rename = "EndTimestamp")]
    pub end_timestamp: Option<Timestamp>,
}

/// `HLSFragmentSelector` / `DASHFragmentSelector`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct SessionFragmentSelector {
    #[serde(rename = "FragmentSelectorType")]
    pub fragment_selector_type: Option<FragmentSelectorType>,
    #[serde(rename = "TimestampRange")]
    pub timestamp_range: Option<SessionTimestampRange>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GetHlsStreamingSessionUrlInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "PlaybackMode")]
    pub playback_mode: Option<PlaybackMode>,
    #[serde(rename = "HLSFragmentSelector")]
    pub fragment_selector: Option<SessionFragmentSelector>,
    #[serde(rename = "ContainerFormat")]
    pub container_format: Option<ContainerFormat>,
    #[serde(rename = "DiscontinuityMode")]
    pub discontinuity_mode: Option<DiscontinuityMode>,
    #[serde(rename = "DisplayFragmentTimestamp")]
    pub display_fragment_timestamp: Option<Display>,
    #[serde(rename = "Expires")]
    pub expires: Option<u32>,
    #[serde(rename = "MaxMediaPlaylistFragmentResults")]
    pub max_media_playlist_fragment_results: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GetHlsStreamingSessionUrlOutput {
    #[serde(rename = "HLSStreamingSessionURL")]
    pub hls_streaming_session_url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GetDashStreamingSessionUrlInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "PlaybackMode")]
    pub playback_mode: Option<PlaybackMode>,
    #[serde(rename = "DisplayFragmentTimestamp")]
    pub display_fragment_timestamp: Option<Display>,
    #[serde(rename = "DisplayFragmentNumber")]
    pub display_fragment_number: Option<Display>,
    #[serde(rename = "DASHFragmentSelector")]
    pub fragment_selector: Option<SessionFragmentSelector>,
    #[serde(rename = "Expires")]
    pub expires: Option<u32>,
    #[serde(rename = "MaxManifestFragmentResults")]
    pub max_manifest_fragment_results: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GetDashStreamingSessionUrlOutput {
    #[serde(rename = "DASHStreamingSessionURL")]
    pub dash_streaming_session_url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GetClipInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "ClipFragmentSelector")]
    pub clip_fragment_selector: FragmentSelector,
}

const PLAYBACK_MODES: Shape = Shape::Enum(&["LIVE", "LIVE_REPLAY", "ON_DEMAND"]);
const SELECTOR_TYPES: Shape = Shape::Enum(&["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"]);
const DISPLAY: Shape = Shape::Enum(&["ALWAYS", "NEVER"]);
const EXPIRES: Shape = Shape::Integer {
    min: Some(300),
    max: Some(43200),
};
const MAX_RESULTS: Shape = Shape::Integer {
    min: Some(1),
    max: Some(5000),
};
const SESSION_SELECTOR: Shape = Shape::Structure(&[
    Member::optional("FragmentSelectorType", &SELECTOR_TYPES),
    Member::optional(
        "TimestampRange",
        &Shape::Structure(&[
            Member::optional("StartTimestamp", &Shape::Timestamp),
            Member::optional("EndTimestamp", &Shape::Timestamp),
        ]),
    ),
]);

impl Input for GetHlsStreamingSessionUrlInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamName", &STREAM_NAME),
        Member::optional("StreamARN", &RESOURCE_ARN),
        Member::optional("PlaybackMode", &PLAYBACK_MODES),
        Member::optional("HLSFragmentSelector", &SESSION_SELECTOR),
        Member::optional(
            "ContainerFormat",
            &Shape::Enum(&["FRAGMENTED_MP4", "MPEG_TS"]),
        ),
        Member::optional(
            "DiscontinuityMode",
            &Shape::Enum(&["ALWAYS", "NEVER", "ON_DISCONTINUITY"]),
        ),
        Member::optional("DisplayFragmentTimestamp", &DISPLAY),
        Member::optional("Expires", &EXPIRES),
        Member::optional("MaxMediaPlaylistFragmentResults", &MAX_RESULTS),
    ]);
}

impl Input for GetDashStreamingSessionUrlInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamName", &STREAM_NAME),
        Member::optional("StreamARN", &RESOURCE_ARN),
        Member::optional("PlaybackMode", &PLAYBACK_MODES),
        Member::optional("DisplayFragmentTimestamp", &DISPLAY),
        Member::optional("DisplayFragmentNumber", &DISPLAY),
        Member::optional("DASHFragmentSelector", &SESSION_SELECTOR),
        Member::optional("Expires", &EXPIRES),
        Member::optional("MaxManifestFragmentResults", &MAX_RESULTS),
    ]);
}

impl Input for GetClipInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamName", &STREAM_NAME),
        Member::optional("StreamARN", &RESOURCE_ARN),
        Member::required(
            "ClipFragmentSelector",
            &Shape::Structure(&[
                Member::required("FragmentSelectorType", &SELECTOR_TYPES),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::parse;

    #[test]
    fn hls_input_parses_every_member() {
        let input: GetHlsStreamingSessionUrlInput = parse(
            br#"{"StreamName":"s","PlaybackMode":"LIVE_REPLAY","HLSFragmentSelector":{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{"StartTimestamp":1.5}},"ContainerFormat":"MPEG_TS","DiscontinuityMode":"ON_DISCONTINUITY","DisplayFragmentTimestamp":"ALWAYS","Expires":300,"MaxMediaPlaylistFragmentResults":5000}"#,
        )
        .unwrap();
        assert_eq!(input.playback_mode, Some(PlaybackMode::LiveReplay));
        assert_eq!(input.container_format, Some(ContainerFormat::MpegTs));
        assert_eq!(
            input.discontinuity_mode,
            Some(DiscontinuityMode::OnDiscontinuity)
        );
        let range = input.fragment_selector.unwrap().timestamp_range.unwrap();
        assert_eq!(range.start_timestamp.unwrap().as_millis(), 1500);
        assert!(range.end_timestamp.is_none());
    }

    #[test]
    fn violations_in_kvs_words() {
        let e = parse::<GetHlsStreamingSessionUrlInput>(
            br#"{"StreamName":"s","Expires":299,"MaxMediaPlaylistFragmentResults":5001,"PlaybackMode":"LATER"}"#,
        )
        .unwrap_err();
        assert!(
            e.message.starts_with("3 validation errors detected"),
            "{}",
            e.message
        );
        assert!(e.message.contains("'expires'"), "{}", e.message);
        let e =
            parse::<GetDashStreamingSessionUrlInput>(br#"{"DisplayFragmentNumber":"SOMETIMES"}"#)
                .unwrap_err();
        assert!(e.message.contains("displayFragmentNumber"), "{}", e.message);
        let e = parse::<GetClipInput>(br#"{"StreamName":"s"}"#).unwrap_err();
        assert!(
            e.message.contains("Value null at 'clipFragmentSelector'"),
            "{}",
            e.message
        );
    }
}
