//! Request validation as KVS does it: every operation input is checked against its botocore
//! model's constraints (required members, enum value sets, lengths, patterns, ranges) before it
//! becomes a typed input, and the violations are reported in KVS's words (spec §1.3):
//! `1 validation error detected: Value 'BOGUS' at 'startSelector.startSelectorType' failed to
//! satisfy constraint: Member must satisfy enum value set: [FRAGMENT_NUMBER, ...]`.
//!
//! Each input type declares its model shape ([`Input::SHAPE`]) next to its definition; the
//! shapes shared by several operations are here. A JSON value of the wrong type (a number where
//! the model has a string) is reported in the same form, in Kinescope's words: KVS's own are
//! not known.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ApiError, ErrorKind};

/// An operation input: a serde type with the model shape it is checked against.
pub trait Input: DeserializeOwned {
    /// The input structure of the model.
    const SHAPE: Shape;

    /// The error kind of a request whose violations include one at `path` (the model's
    /// member path, such as `streamARN`): `InvalidArgumentException` unless an operation's
    /// model names another for that member.
    fn violation_kind(path: &str) -> ErrorKind {
        let _ = path;
        ErrorKind::InvalidArgument
    }
}

/// Parses a request body as KVS does: an empty body is `{}`; a body that is not a JSON object
/// is a `SerializationException`; a body that breaks the model's constraints is an
/// `InvalidArgumentException` listing every violation.
pub fn parse<T: Input>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Serialization,
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorKind::Serialization,
            "request body must be a JSON object",
        ));
    }
    let mut violations = Vec::new();
    T::SHAPE.check(&value, "", &mut violations);
    if !violations.is_empty() {
        let kind = violations
            .iter()
            .map(|v| T::violation_kind(&v.path))
            .find(|k| *k != ErrorKind::InvalidArgument)
            .unwrap_or(ErrorKind::InvalidArgument);
        return Err(ApiError::new(kind, message(&violations)));
    }
    // What the model does not say (a stream named `..`, say) the types refuse themselves.
    serde_json::from_value(value).map_err(|e| ApiError::invalid_argument(e.to_string()))
}

/// A shape of the model and its constraints.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    String(Str),
    Enum(&'static [&'static str]),
    /// `integer` and `long`.
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    /// Epoch seconds, a JSON number (spec §1.3).
    Timestamp,
    List {
        member: &'static Shape,
        min: usize,
        max: usize,
    },
    Map {
        key: &'static Shape,
        value: &'static Shape,
        min: usize,
        max: usize,
    },
    Structure(&'static [Member]),
}

/// A string's length bounds (in characters) and pattern.
#[derive(Debug, Clone, Copy)]
pub struct Str {
    pub min: usize,
    pub max: usize,
    pub pattern: Option<Pattern>,
}

/// A model pattern: its text, as reported, and a matcher for the whole string.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    pub text: &'static str,
    pub matches: fn(&str) -> bool,
}

/// A member of a structure, by its model name (`StreamName`).
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub name: &'static str,
    pub shape: &'static Shape,
    pub required: bool,
}

impl Member {
    pub const fn required(name: &'static str, shape: &'static Shape) -> Self {
        Self {
            name,
            shape,
            required: true,
        }
    }

    pub const fn optional(name: &'static str, shape: &'static Shape) -> Self {
        Self {
            name,
            shape,
            required: false,
        }
    }
}

/// One broken constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Violation {
    /// `startSelector.startSelectorType`, `tags.1.member.key`.
    path: String,
    /// As KVS quotes it: `'BOGUS'`, or `null`.
    value: String,
    constraint: String,
}

fn message(violations: &[Violation]) -> String {
    let n = violations.len();
    let list: Vec<String> = violations
        .iter()
        .map(|v| {
            format!(
                "Value {} at '{}' failed to satisfy constraint: {}",
                v.value, v.path, v.constraint
            )
        })
        .collect();
    format!(
        "{n} validation error{} detected: {}",
        if n == 1 { "" } else { "s" },
        list.join("; ")
    )
}

impl Shape {
    fn check(&self, value: &Value, path: &str, out: &mut Vec<Violation>) {
        let failed = self.constraints(value);
        if !failed.is_empty() {
            let quoted = format!("'{}'", render(value));
            out.extend(failed.into_iter().map(|constraint| Violation {
                path: path.to_owned(),
                value: quoted.clone(),
                constraint,
            }));
            return;
        }
        match (self, value) {
            (Self::Structure(members), Value::Object(fields)) => {
                for m in *members {
                    let path = member_path(path, m.name);
                    match fields.get(m.name).filter(|v| !v.is_null()) {
                        Some(v) => m.shape.check(v, &path, out),
                        None if m.required => out.push(Violation {
                            path,
                            value: "null".into(),
                            constraint: "Member must not be null".into(),
                        }),
                        None => {}
                    }
                }
            }
            (Self::List { member, .. }, Value::Array(items)) => {
                if let Self::Structure(_) = member {
                    for (i, item) in items.iter().enumerate() {
                        member.check(item, &format!("{path}.{}.member", i + 1), out);
                    }
                } else {
                    self.check_members(
                        "Member",
                        items.iter().map(|i| (*member, i)),
                        value,
                        path,
                        out,
                    );
                }
            }
            (Self::Map { key, value: v, .. }, Value::Object(entries)) => {
                let keys: Vec<Value> = entries.keys().map(|k| Value::String(k.clone())).collect();
                self.check_members("Map keys", keys.iter().map(|k| (*key, k)), value, path, out);
                self.check_members(
                    "Map value",
                    entries.values().map(|e| (*v, e)),
                    value,
                    path,
                    out,
                );
            }
            _ => {}
        }
    }

    /// One violation for the members of a list or map (`what` must satisfy constraint: [...]),
    /// listing each broken constraint once.
    fn check_members<'a>(
        &self,
        what: &str,
        members: impl Iterator<Item = (&'a Shape, &'a Value)>,
        whole: &Value,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        let mut failed: Vec<String> = Vec::new();
        for (shape, v) in members {
            for c in shape.constraints(v) {
                if !failed.contains(&c) {
                    failed.push(c);
                }
            }
        }
        if !failed.is_empty() {
            out.push(Violation {
                path: path.to_owned(),
                value: format!("'{}'", render(whole)),
                constraint: format!("{what} must satisfy constraint: [{}]", failed.join(", ")),
            });
        }
    }

    /// The constraints of this shape that `value` itself breaks (not its members').
    fn constraints(&self, value: &Value) -> Vec<String> {
        let mut failed = Vec::new();
        match (self, value) {
            (Self::String(s), Value::String(v)) => {
                length(&mut failed, v.chars().count(), s.min, s.max);
                if let Some(p) = s.pattern
                    && !(p.matches)(v)
                {
                    failed.push(format!(
                        "Member must satisfy regular expression pattern: {}",
                        p.text
                    ));
                }
            }
            (Self::Enum(set), Value::String(v)) => {
                if !set.contains(&v.as_str()) {
                    failed.push(format!(
                        "Member must satisfy enum value set: [{}]",
                        set.join(", ")
                    ));
                }
            }
            (Self::Integer { min, max }, Value::Number(n)) => match n.as_i64() {
                Some(v) => {
                    if let Some(min) = min.filter(|m| v < *m) {
                        failed.push(format!(
                            "Member must have value greater than or equal to {min}"
                        ));
                    }
                    if let Some(max) = max.filter(|m| v > *m) {
                        failed.push(format!(
                            "Member must have value less than or equal to {max}"
                        ));
                    }
                }
                None => failed.push("Member must be an integer".into()),
            },
            (Self::Timestamp, Value::Number(n)) => {
                if !n.as_f64().is_some_and(|s| s.abs() <= 1e13) {
                    failed.push("Member must be a timestamp in epoch seconds".into());
                }
            }
            (Self::List { min, max, .. }, Value::Array(items)) => {
                length(&mut failed, items.len(), *min, *max);
            }
            (Self::Map { min, max, .. }, Value::Object(entries)) => {
                length(&mut failed, entries.len(), *min, *max);
            }
            (Self::Structure(_), Value::Object(_)) => {}
            (shape, _) => failed.push(format!("Member must be {}", shape.kind())),
        }
        failed
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::String(_) | Self::Enum(_) => "a string",
            Self::Integer { .. } => "an integer",
            Self::Timestamp => "a timestamp in epoch seconds",
            Self::List { .. } => "a list",
            Self::Map { .. } | Self::Structure(_) => "an object",
        }
    }
}

fn length(failed: &mut Vec<String>, n: usize, min: usize, max: usize) {
    if n < min {
        failed.push(format!(
            "Member must have length greater than or equal to {min}"
        ));
    }
    if n > max {
        failed.push(format!(
            "Member must have length less than or equal to {max}"
        ));
    }
}

/// The member's path as KVS reports it: the model name with a lower-case first letter
/// (`StreamARN` is `streamARN`), nested with dots.
fn member_path(parent: &str, name: &str) -> String {
    let mut chars = name.chars();
    let first = chars.next().map(|c| c.to_ascii_lowercase());
    let lower: String = first.into_iter().chain(chars).collect();
    if parent.is_empty() {
        lower
    } else {
        format!("{parent}.{lower}")
    }
}

/// A value as KVS quotes it: strings and numbers bare, lists `[a, b]`, maps `{k=v}`.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}={}", render(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        other => other.to_string(),
    }
}

// Shapes shared by several operations (`spec/aws-models/*.json`).

pub(crate) const STREAM_NAME: Shape = Shape::String(Str {
    min: 1,
    max: 256,
    pattern: Some(Pattern {
        text: "[a-zA-Z0-9_.-]+",
        matches: crate::names::is_name,
    }),
});

/// `ResourceARN`, the stream ARN of every operation but GetMedia.
pub(crate) const RESOURCE_ARN: Shape = Shape::String(Str {
    min: 1,
    max: 1024,
    pattern: Some(Pattern {
        text: "arn:[a-z\\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+",
        matches: |s| is_arn(s, is_lower_digit_dash),
    }),
});

/// GetMedia's `StreamARN`: the `aws` partition only.
pub(crate) const GET_MEDIA_ARN: Shape = Shape::String(Str {
    min: 1,
    max: 1024,
    pattern: Some(Pattern {
        text: "arn:aws:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+",
        matches: |s| is_arn(s, |p| p == "aws"),
    }),
});

pub(crate) const VERSION: Shape = Shape::String(Str {
    min: 1,
    max: 64,
    pattern: Some(Pattern {
        text: "[a-zA-Z0-9]+",
        matches: |s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()),
    }),
});

pub(crate) const TAG_KEY: Shape = Shape::String(Str {
    min: 1,
    max: 128,
    pattern: Some(Pattern {
        text: "^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$",
        matches: |s| s.chars().all(crate::names::is_tag_char),
    }),
});

pub(crate) const TAG_VALUE: Shape = Shape::String(Str {
    min: 0,
    max: 256,
    pattern: Some(Pattern {
        text: "[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*",
        matches: |s| s.chars().all(crate::names::is_tag_char),
    }),
});

/// `ResourceTags`.
pub(crate) const TAGS: Shape = Shape::Map {
    key: &TAG_KEY,
    value: &TAG_VALUE,
    min: 1,
    max: 50,
};

pub(crate) const TAG_KEY_LIST: Shape = Shape::List {
    member: &TAG_KEY,
    min: 1,
    max: 50,
};

pub(crate) const FRAGMENT_NUMBER: Shape = Shape::String(Str {
    min: 1,
    max: 128,
    pattern: Some(Pattern {
        text: "^[0-9]+$",
        matches: |s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
    }),
});

/// `arn:<partition>:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+`, whole.
fn is_arn(s: &str, partition: fn(&str) -> bool) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let [arn, p, service, region, account, resource] = parts[..] else {
        return false;
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    let res: Vec<&str> = resource.split('/').collect();
    let [kind, name, created] = res[..] else {
        return false;
    };
    arn == "arn"
        && partition(p)
        && service == "kinesisvideo"
        && is_lower_digit_dash(region)
        && digits(account)
        && !kind.is_empty()
        && kind.bytes().all(|b| b.is_ascii_lowercase())
        && crate::names::is_name(name)
        && digits(created)
}

fn is_lower_digit_dash(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Probe {}

    impl Input for Probe {
        const SHAPE: Shape = Shape::Structure(&[
            Member::required("StreamARN", &RESOURCE_ARN),
            Member::optional(
                "Count",
                &Shape::Integer {
                    min: Some(1),
                    max: Some(10),
                },
            ),
            Member::optional("Tags", &TAGS),
            Member::optional("Keys", &TAG_KEY_LIST),
            Member::optional("At", &Shape::Timestamp),
        ]);
    }

    const ARN: &str = "arn:aws:kinesisvideo:us-west-2:123456789012:stream/s1/1581494584992";

    fn error(body: &str) -> ApiError {
        parse::<Probe>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn kvs_wording() {
        let e = error("{}");
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert_eq!(
            e.message,
            "1 validation error detected: Value null at 'streamARN' failed to satisfy constraint: Member must not be null"
        );
        assert_eq!(
            error(&format!(r#"{{"StreamARN": "{ARN}", "Count": 0}}"#)).message,
            "1 validation error detected: Value '0' at 'count' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
        assert_eq!(
            error(r#"{"StreamARN": "arn:x", "Count": 11}"#).message,
            "2 validation errors detected: Value 'arn:x' at 'streamARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:[a-z\\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+; Value '11' at 'count' failed to satisfy constraint: Member must have value less than or equal to 10"
        );
    }

    #[test]
    fn lists_and_maps_report_their_members_once() {
        let long = "k".repeat(129);
        let e = error(&format!(
            r#"{{"StreamARN": "{ARN}", "Keys": ["a", "", "b*"], "Tags": {{"{long}": "v", "ok": "tab\there"}}}}"#
        ));
        assert_eq!(
            e.message,
            format!(
                "3 validation errors detected: \
                 Value '{{{long}=v, ok=tab\there}}' at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: [Member must have length less than or equal to 128]; \
                 Value '{{{long}=v, ok=tab\there}}' at 'tags' failed to satisfy constraint: Map value must satisfy constraint: [Member must satisfy regular expression pattern: [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*]; \
                 Value '[a, , b*]' at 'keys' failed to satisfy constraint: Member must satisfy constraint: [Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: ^([\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*)$]"
            )
        );
        let many: Vec<String> = (0..51).map(|i| format!("\"k{i}\"")).collect();
        assert!(
            error(&format!(r#"{{"StreamARN": "{ARN}", "Keys": [{}]}}"#, many.join(",")))
                .message
                .ends_with("at 'keys' failed to satisfy constraint: Member must have length less than or equal to 50")
        );
    }

    #[test]
    fn wrong_types_in_the_same_form() {
        assert_eq!(
            error(r#"{"StreamARN": 7}"#).message,
            "1 validation error detected: Value '7' at 'streamARN' failed to satisfy constraint: Member must be a string"
        );
        assert_eq!(
            error(&format!(
                r#"{{"StreamARN": "{ARN}", "Count": 1.5, "At": "2020-02-31"}}"#
            ))
            .message,
            "2 validation errors detected: Value '1.5' at 'count' failed to satisfy constraint: Member must be an integer; Value '2020-02-31' at 'at' failed to satisfy constraint: Member must be a timestamp in epoch seconds"
        );
    }

    #[test]
    fn bodies_that_are_not_json_objects() {
        for body in ["{not json", "[1,2]", "\"s\""] {
            assert_eq!(error(body).kind, ErrorKind::Serialization, "{body}");
        }
        assert_eq!(
            error(" \n").kind,
            ErrorKind::InvalidArgument,
            "empty is {{}}"
        );
        assert!(
            parse::<Probe>(
                format!(r#"{{"StreamARN": "{ARN}", "Other": 1, "Count": null}}"#).as_bytes()
            )
            .is_ok()
        );
    }

    #[test]
    fn arn_patterns() {
        let resource = |s| is_arn(s, is_lower_digit_dash);
        assert!(resource(ARN));
        assert!(resource(
            "arn:aws-cn:kinesisvideo:cn-north-1:1:channel/c.1/2"
        ));
        for bad in [
            "arn:aws:kinesisvideo:us-west-2:1:stream/s1",
            "arn:aws:kinesisvideo:us-west-2:1:stream/s 1/1",
            "arn:aws:kinesisvideo:us-west-2:x:stream/s1/1",
            "arn:aws:kinesisvideo:us-west-2:1:stream/s1/1/2",
            "arn:aws:kinesisvideo:us-west-2:1:1:stream/s1/1",
            "arn:AWS:kinesisvideo:us-west-2:1:stream/s1/1",
            "arn:aws:kinesis:us-west-2:1:stream/s1/1",
            "arn:aws:kinesisvideo:us-west-2:1:Stream/s1/1",
        ] {
            assert!(!resource(bad), "{bad}");
        }
        assert!(is_arn(ARN, |p| p == "aws"));
        assert!(!is_arn("arn:aws-cn:kinesisvideo:r:1:stream/s/1", |p| p == "aws"));
    }
}
