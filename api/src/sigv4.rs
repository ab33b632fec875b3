//! AWS Signature Version 4 (spec §1.2): [`verify`] recomputes the signature of a received
//! request from the headers it says it signed, exactly as they arrived, and compares;
//! [`sign`] signs a request the same way (for Kinescope's own clients). One canonicalisation
//! serves both.
//!
//! The quirks of the real clients are deliberate inputs here, not special cases: the C producer
//! signs `Host` without the port and signs `connection`, `transfer-encoding` and `user-agent`;
//! streaming PutMedia is signed over the hash of the empty payload unless the client sends
//! `x-amz-content-sha256` (whose value is then used verbatim, e.g. `UNSIGNED-PAYLOAD`).
//!
//! A buffered body is always hashed here, never taken from the client's word (spec §0.16): a
//! signature that does not cover the body would let a captured request carry any other body.
//! [`preflight`] runs the checks that need no body, so that a server refuses a stranger before
//! reading (and buffering) what it sends.

use std::collections::HashMap;

use aws_lc_rs::{digest, hmac};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{Timestamp, civil};

/// The only credential-scope service name of all three KVS API groups.
pub const SERVICE: &str = "kinesisvideo";
/// Largest accepted difference between the request's `x-amz-date` and the server clock.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;
/// Hex SHA-256 of the empty string: the payload hash of streaming PutMedia.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Configured access key ids and their secrets.
#[derive(Clone, Default)]
pub struct KeyStore(HashMap<String, String>);

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl KeyStore {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }
}

/// What the payload hash of a request is taken from.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A buffered body (JSON calls): its SHA-256, computed here. An `x-amz-content-sha256`
    /// header must equal it.
    Body(&'a [u8]),
    /// A streaming body (PutMedia): the header's literal (`UNSIGNED-PAYLOAD`,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) or the hash of the empty string. The signature then
    /// binds the headers (stream, timestamps), not the media.
    Streaming,
}

/// The parts of a received request that SigV4 covers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as received, still percent-encoded.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The request's authority when it carries no `Host` header: HTTP/2's `:authority`, which
    /// is what an HTTP/2 client signs as `host`.
    pub authority: Option<&'a str>,
    pub payload: Payload<'a>,
}

/// Why a request's signature was refused. The messages are for the client: they never
/// contain the secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Incomplete(String),
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
    #[error("Signature expired: {request} is now earlier than {limit} ({now} - 5 min.)")]
    Expired {
        request: String,
        limit: String,
        now: String,
    },
    #[error("Signature not yet current: {request} is still later than {limit} ({now} + 5 min.)")]
    NotYetCurrent {
        request: String,
        limit: String,
        now: String,
    },
    #[error("Credential should be scoped to correct service: '{SERVICE}'.")]
    WrongService,
    /// `x-amz-content-sha256` is not the hash of the body received, or is a literal that only a
    /// streaming body may use.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed: {0}")]
    ContentHashMismatch(String),
}

/// The identity a verified request was signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key: String,
    pub region: String,
}

/// The checks that need no body: a well-formed `Authorization` for this service from a known
/// key, signed within the clock-skew window. Run it before reading a body; [`verify`] repeats it.
pub fn preflight<'h>(
    headers: &'h HeaderMap,
    keys: &'h KeyStore,
    now: Timestamp,
) -> Result<Preflight<'h>, AuthError> {
    let auth = headers.get("authorization").ok_or(AuthError::Missing)?;
    let auth = auth
        .to_str()
        .map_err(|_| AuthError::Incomplete("Authorization header is not ASCII".into()))?;
    let parsed = Authorization::parse(auth)?;

    let amz_date = header_str(headers, "x-amz-date")
        .ok_or_else(|| AuthError::Incomplete("Missing X-Amz-Date header".into()))?;
    let signed_at = parse_amz_date(amz_date)
        .ok_or_else(|| AuthError::Incomplete(format!("Invalid X-Amz-Date '{amz_date}'")))?;
    if parsed.date != &amz_date[..8] {
        return Err(AuthError::Incomplete(format!(
            "Credential date {} does not match X-Amz-Date {amz_date}",
            parsed.date
        )));
    }
    if parsed.service != SERVICE {
        return Err(AuthError::WrongService);
    }
    if !parsed.signed_headers.contains(&"host") {
        return Err(AuthError::Incomplete(
            "SignedHeaders must include host".into(),
        ));
    }
    check_skew(amz_date, signed_at, now)?;
    let secret = keys
        .0
        .get(parsed.access_key)
        .ok_or(AuthError::UnknownAccessKey)?;
    Ok(Preflight {
        parsed,
        amz_date,
        secret,
    })
}

/// A request whose headers passed [`preflight`]; only the signature remains to be checked.
#[derive(Debug)]
pub struct Preflight<'h> {
    parsed: Authorization<'h>,
    amz_date: &'h str,
    secret: &'h str,
}

/// Verifies the request's `Authorization` header against `keys` at time `now`.
pub fn verify(req: &Request<'_>, keys: &KeyStore, now: Timestamp) -> Result<Verified, AuthError> {
    preflight(req.headers, keys, now)?.verify(req)
}

impl Preflight<'_> {
    /// Checks the signature over `req`, which carries the headers this preflight read: what
    /// remains of [`verify`] once the body is known, without parsing the headers again.
    pub fn verify(self, req: &Request<'_>) -> Result<Verified, AuthError> {
        let Self {
            parsed,
            amz_date,
            secret,
        } = self;
        let payload_hash = server_payload_hash(req.headers, req.payload)?;
        let canonical = canonical_request(req, &parsed.signed_headers, &payload_hash)?;
        let scope = format!(
            "{}/{}/{}/aws4_request",
            parsed.date, parsed.region, parsed.service
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(digest::digest(&digest::SHA256, &canonical).as_ref())
        );
        let key = signing_key(secret, parsed.date, parsed.region, parsed.service);
        let expected = hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
        if !constant_time_eq(expected.as_bytes(), parsed.signature.as_bytes()) {
            return Err(AuthError::Mismatch);
        }
        Ok(Verified {
            access_key: parsed.access_key.to_owned(),
            region: parsed.region.to_owned(),
        })
    }
}

/// The payload hash the server signs over (spec §0.16): a buffered body's own SHA-256, which a
/// present `x-amz-content-sha256` must equal; for a streaming body the header's literal or the
/// empty-string hash.
fn server_payload_hash(headers: &HeaderMap, payload: Payload<'_>) -> Result<String, AuthError> {
    let claimed = headers.get("x-amz-content-sha256").map(|v| {
        v.to_str()
            .map_err(|_| AuthError::ContentHashMismatch("the header is not ASCII".into()))
    });
    let claimed = claimed.transpose()?;
    match payload {
        Payload::Body(body) => {
            let actual = hex(digest::digest(&digest::SHA256, body).as_ref());
            match claimed {
                Some(c) if !c.eq_ignore_ascii_case(&actual) => {
                    Err(AuthError::ContentHashMismatch(if is_literal(c) {
                        format!("'{c}' is only accepted for streaming PutMedia bodies")
                    } else {
                        format!("the body's SHA-256 is {actual}")
                    }))
                }
                _ => Ok(actual),
            }
        }
        Payload::Streaming => match claimed {
            None => Ok(EMPTY_PAYLOAD_SHA256.to_owned()),
            Some(c) if is_literal(c) || c == EMPTY_PAYLOAD_SHA256 => Ok(c.to_owned()),
            Some(c) => Err(AuthError::ContentHashMismatch(format!(
                "'{c}' cannot be checked on a streaming body; sign PutMedia with \
                 UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD or the empty-string hash"
            ))),
        },
    }
}

/// The payload-hash literals of SigV4 that stand for a body not hashed up front.
fn is_literal(v: &str) -> bool {
    v == "UNSIGNED-PAYLOAD" || v.starts_with("STREAMING-")
}

/// A key pair and region to sign requests with.
#[derive(Clone)]
pub struct Signer {
    pub access_key: String,
    pub secret: String,
    pub region: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Signs a request in place: adds `x-amz-date` and `authorization`, signing every header
    /// already in `headers` (which must include `host`) plus `x-amz-date`. The payload hash is
    /// taken as [`verify`] takes it.
    pub fn sign(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: &mut HeaderMap,
        payload: Payload<'_>,
        now: Timestamp,
    ) {
        let (access_key, secret, region) = (&self.access_key, &self.secret, self.region.as_str());
        let amz_date = civil::amz_date(now);
        headers.insert(
            "x-amz-date",
            HeaderValue::from_str(&amz_date).expect("ASCII"),
        );
        let mut names: Vec<String> = headers
            .keys()
            .map(|k| k.as_str().to_owned())
            .filter(|k| k != "authorization")
            .collect();
        names.sort();
        names.dedup();
        let signed: Vec<&str> = names.iter().map(String::as_str).collect();
        let payload_hash = match (header_str(headers, "x-amz-content-sha256"), payload) {
            (Some(h), _) => h.to_owned(),
            (None, Payload::Body(b)) => hex(digest::digest(&digest::SHA256, b).as_ref()),
            (None, Payload::Streaming) => EMPTY_PAYLOAD_SHA256.to_owned(),
        };
        let req = Request {
            method,
            path,
            query,
            headers,
            authority: None,
            payload,
        };
        let canonical = canonical_request(&req, &signed, &payload_hash)
            .expect("every signed header is present");
        let date = &amz_date[..8];
        let scope = format!("{date}/{region}/{SERVICE}/aws4_request");
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(digest::digest(&digest::SHA256, &canonical).as_ref())
        );
        let key = signing_key(secret, date, region, SERVICE);
        let signature = hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={}, Signature={signature}",
            signed.join(";")
        );
        headers.insert(
            HeaderName::from_static("authorization"),
            HeaderValue::from_str(&auth).expect("ASCII"),
        );
    }
}

/// The parsed `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
#[derive(Debug)]
struct Authorization<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(h: &'a str) -> Result<Self, AuthError> {
        let incomplete = |m: &str| AuthError::Incomplete(m.to_owned());
        let rest = h
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or_else(|| incomplete("Authorization must use the AWS4-HMAC-SHA256 algorithm"))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
        let credential = credential
            .ok_or_else(|| incomplete("Authorization header requires a 'Credential' parameter"))?;
        let signed = signed.ok_or_else(|| {
            incomplete("Authorization header requires a 'SignedHeaders' parameter")
        })?;
        let signature = signature
            .ok_or_else(|| incomplete("Authorization header requires a 'Signature' parameter"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key, date, region, service, "aws4_request"] = scope[..] else {
            return Err(incomplete(
                "Credential must be ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request",
            ));
        };
        if access_key.is_empty() || region.is_empty() || date.len() != 8 {
            return Err(incomplete("Credential has an empty or malformed part"));
        }
        let signed_headers: Vec<&str> = signed.split(';').collect();
        let well_formed = signed_headers.iter().all(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
        });
        if !well_formed || !signed_headers.is_sorted() {
            return Err(incomplete(
                "SignedHeaders must be sorted lower-case header names",
            ));
        }
        Ok(Self {
            access_key,
            date,
            region,
            service,
            signed_headers,
            signature,
        })
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `YYYYMMDDTHHMMSSZ` → ms since the epoch.
fn parse_amz_date(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let small = |v: i64| u32::try_from(v).ok();
    civil::timestamp(
        y,
        small(mo)?,
        small(d)?,
        small(h)?,
        small(mi)?,
        small(sec)?,
        0,
    )
}

fn check_skew(amz_date: &str, signed_at: Timestamp, now: Timestamp) -> Result<(), AuthError> {
    let (t, n) = (signed_at.as_millis(), now.as_millis());
    if t < n - MAX_SKEW_MS {
        return Err(AuthError::Expired {
            request: amz_date.to_owned(),
            limit: civil::amz_date(Timestamp::from_millis(n - MAX_SKEW_MS)),
            now: civil::amz_date(now),
        });
    }
    if t > n + MAX_SKEW_MS {
        return Err(AuthError::NotYetCurrent {
            request: amz_date.to_owned(),
            limit: civil::amz_date(Timestamp::from_millis(n + MAX_SKEW_MS)),
            now: civil::amz_date(now),
        });
    }
    Ok(())
}

/// The canonical request of SigV4: method, URI, query, signed headers, payload hash.
fn canonical_request(
    req: &Request<'_>,
    signed_headers: &[&str],
    payload_hash: &str,
) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(req.method.as_bytes());
    out.push(b'\n');
    let path = if req.path.is_empty() { "/" } else { req.path };
    // Non-S3 services sign the path URI-encoded once more (the "double encoding" rule).
    uri_encode(&mut out, path.as_bytes(), false);
    out.push(b'\n');
    out.extend_from_slice(canonical_query(req.query.unwrap_or("")).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        let mut values = req.headers.get_all(*name).iter().peekable();
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        match (values.peek(), req.authority) {
            (None, Some(authority)) if *name == "host" => {
                push_trimmed(&mut out, authority.as_bytes());
            }
            (None, _) => {
                return Err(AuthError::Incomplete(format!(
                    "Signed header '{name}' is not present in the request"
                )));
            }
            _ => {
                for (i, v) in values.enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    push_trimmed(&mut out, v.as_bytes());
                }
            }
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    Ok(out)
}

/// A header value with leading/trailing spaces removed and inner runs of spaces collapsed.
fn push_trimmed(out: &mut Vec<u8>, v: &[u8]) {
    let mut space = false;
    for &b in v.trim_ascii() {
        if b == b' ' || b == b'\t' {
            space = true;
            continue;
        }
        if space {
            out.push(b' ');
            space = false;
        }
        out.push(b);
    }
}

/// The query string with parameters decoded, re-encoded and sorted.
fn canonical_query(q: &str) -> String {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let mut ek = Vec::new();
            let mut ev = Vec::new();
            uri_encode(&mut ek, &percent_decode(k.as_bytes()), true);
            uri_encode(&mut ev, &percent_decode(v.as_bytes()), true);
            (ek, ev)
        })
        .collect();
    pairs.sort();
    let mut out = Vec::new();
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend(k);
        out.push(b'=');
        out.extend(v);
    }
    String::from_utf8(out).unwrap_or_default()
}

fn uri_encode(out: &mut Vec<u8>, input: &[u8], encode_slash: bool) {
    for &b in input {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (b == b'/' && !encode_slash)
        {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let hex_at = |j: usize| input.get(j).and_then(|c| (*c as char).to_digit(16));
        match (input[i], hex_at(i + 1), hex_at(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = step(format!("AWS4{secret}").as_bytes(), date);
    let k_region = step(k_date.as_ref(), region);
    let k_service = step(k_region.as_ref(), service);
    let k_signing = step(k_service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const ACCESS_KEY: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// A raw request from `testdata/requests/`: request line, headers, blank line, body.
    struct Raw {
        method: String,
        path: String,
        query: Option<String>,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    fn parse_raw(bytes: &[u8]) -> Raw {
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header end");
        let head = std::str::from_utf8(&bytes[..split]).unwrap();
        let body = bytes[split + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap().split(' ');
        let method = request_line.next().unwrap().to_owned();
        let target = request_line.next().unwrap();
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.to_owned(), None),
        };
        let mut headers = HeaderMap::new();
        for line in lines {
            let (name, value) = line.split_once(':').unwrap();
            headers.append(
                HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).unwrap(),
                HeaderValue::from_bytes(value.trim_start().as_bytes()).unwrap(),
            );
        }
        Raw {
            method,
            path,
            query,
            headers,
            body,
        }
    }

    fn fixtures() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/requests");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
            .map(|f| f.unwrap().path())
            .collect();
        files.sort();
        assert!(
            files.len() >= 28,
            "expected the captured requests in {root:?}"
        );
        files
    }

    /// The time the request was signed, from its own `x-amz-date`.
    fn signed_at(raw: &Raw) -> Timestamp {
        parse_amz_date(raw.headers.get("x-amz-date").unwrap().to_str().unwrap()).unwrap()
    }

    fn check(raw: &Raw, keys: &KeyStore) -> Result<Verified, AuthError> {
        check_at(raw, keys, signed_at(raw))
    }

    fn check_at(raw: &Raw, keys: &KeyStore, now: Timestamp) -> Result<Verified, AuthError> {
        let payload = if raw.path == "/putMedia" {
            Payload::Streaming
        } else {
            Payload::Body(&raw.body)
        };
        let req = Request {
            method: &raw.method,
            path: &raw.path,
            query: raw.query.as_deref(),
            headers: &raw.headers,
            authority: None,
            payload,
        };
        verify(&req, keys, now)
    }

    fn keys(secret: &str) -> KeyStore {
        KeyStore::new([(ACCESS_KEY.to_owned(), secret.to_owned())])
    }

    #[test]
    fn every_captured_request_verifies() {
        for f in fixtures() {
            let raw = parse_raw(&std::fs::read(&f).unwrap());
            let v = check(&raw, &keys(SECRET)).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            assert_eq!(v.access_key, ACCESS_KEY);
            assert_eq!(v.region, "us-west-2");
        }
    }

    #[test]
    fn a_wrong_secret_fails_every_request() {
        for f in fixtures() {
            let raw = parse_raw(&std::fs::read(&f).unwrap());
            let wrong = format!("{}X", &SECRET[..SECRET.len() - 1]);
            assert_eq!(
                check(&raw, &keys(&wrong)),
                Err(AuthError::Mismatch),
                "{f:?}"
            );
        }
    }

    #[test]
    fn one_changed_byte_in_any_signed_header_or_the_body_fails() {
        for f in fixtures() {
            let raw = parse_raw(&std::fs::read(&f).unwrap());
            let auth = raw
                .headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let signed = Authorization::parse(&auth)
                .unwrap()
                .signed_headers
                .join(";");
            for name in signed.split(';') {
                let mut changed = raw_clone(&raw);
                let v = changed.headers.get(name).unwrap().as_bytes().to_vec();
                let mut v2 = v.clone();
                let last = v2.len() - 1;
                v2[last] = if v2[last] == b'1' { b'2' } else { b'1' };
                changed.headers.insert(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_bytes(&v2).unwrap(),
                );
                let r = check_at(&changed, &keys(SECRET), signed_at(&raw));
                assert!(r.is_err(), "{f:?}: changing {name} still verified");
            }
            if !raw.body.is_empty() {
                let mut changed = raw_clone(&raw);
                changed.body[0] ^= 1;
                assert_eq!(
                    check(&changed, &keys(SECRET)),
                    Err(AuthError::Mismatch),
                    "{f:?}"
                );
            }
        }
    }

    fn raw_clone(r: &Raw) -> Raw {
        Raw {
            method: r.method.clone(),
            path: r.path.clone(),
            query: r.query.clone(),
            headers: r.headers.clone(),
            body: r.body.clone(),
        }
    }

    #[test]
    fn clock_skew_window_is_five_minutes() {
        let f = fixtures().into_iter().next().unwrap();
        let raw = parse_raw(&std::fs::read(f).unwrap());
        let date = raw.headers.get("x-amz-date").unwrap().to_str().unwrap();
        let t = parse_amz_date(date).unwrap().as_millis();
        let req = Request {
            method: &raw.method,
            path: &raw.path,
            query: None,
            headers: &raw.headers,
            authority: None,
            payload: Payload::Body(&raw.body),
        };
        let at = |ms| verify(&req, &keys(SECRET), Timestamp::from_millis(ms));
        assert!(at(t + MAX_SKEW_MS).is_ok());
        assert!(at(t - MAX_SKEW_MS).is_ok());
        assert!(matches!(
            at(t + MAX_SKEW_MS + 1000),
            Err(AuthError::Expired { .. })
        ));
        assert!(matches!(
            at(t - MAX_SKEW_MS - 1000),
            Err(AuthError::NotYetCurrent { .. })
        ));
    }

    #[test]
    fn unknown_keys_missing_and_malformed_headers_are_refused() {
        let f = fixtures().into_iter().next().unwrap();
        let raw = parse_raw(&std::fs::read(f).unwrap());
        let other = KeyStore::new([("AKIDOTHER".to_owned(), SECRET.to_owned())]);
        assert_eq!(check(&raw, &other), Err(AuthError::UnknownAccessKey));
        let mut no_auth = raw_clone(&raw);
        no_auth.headers.remove("authorization");
        assert_eq!(check(&no_auth, &keys(SECRET)), Err(AuthError::Missing));
        for bad in [
            "AWS4-HMAC-SHA1 Credential=a/20261127/r/kinesisvideo/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/20261127/r/kinesisvideo, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/20261127/r/kinesisvideo/aws4_request, SignedHeaders=x-amz-date;host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/20261127/r/kinesisvideo/aws4_request, SignedHeaders=content-type;x-amz-date, Signature=00",
        ] {
            let mut r = raw_clone(&raw);
            r.headers
                .insert("authorization", HeaderValue::from_static(bad));
            assert!(
                matches!(check(&r, &keys(SECRET)), Err(AuthError::Incomplete(_))),
                "{bad}"
            );
        }
        let mut s3 = raw_clone(&raw);
        s3.headers.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/us-west-2/s3/aws4_request, SignedHeaders=host, Signature=00"),
        );
        assert_eq!(check(&s3, &keys(SECRET)), Err(AuthError::WrongService));
    }

    #[test]
    fn what_sign_signs_verify_accepts() {
        let now = Timestamp::from_millis(1_795_770_002_000);
        for payload in [Payload::Body(b"{\"StreamName\":\"s\"}"), Payload::Streaming] {
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("127.0.0.1"));
            headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
            headers.insert("x-amzn-stream-name", HeaderValue::from_static("s"));
            let signer = Signer {
                access_key: ACCESS_KEY.into(),
                secret: SECRET.into(),
                region: "eu-west-1".into(),
            };
            signer.sign("POST", "/putMedia", None, &mut headers, payload, now);
            let req = Request {
                method: "POST",
                path: "/putMedia",
                query: None,
                headers: &headers,
                authority: None,
                payload,
            };
            let v = verify(&req, &keys(SECRET), now).unwrap();
            assert_eq!(v.region, "eu-west-1");
            assert_eq!(verify(&req, &keys("other"), now), Err(AuthError::Mismatch));
        }
    }

    /// Signs `body` for `path` as botocore does (no `x-amz-content-sha256`), plus `extra` headers.
    fn signed(path: &str, body: &[u8], extra: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8443"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        for (k, v) in extra {
            headers.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        let signer = Signer {
            access_key: ACCESS_KEY.into(),
            secret: SECRET.into(),
            region: "us-west-2".into(),
        };
        signer.sign("POST", path, None, &mut headers, Payload::Body(body), NOW);
        headers
    }

    const NOW: Timestamp = Timestamp::from_millis(1_795_770_002_000);

    fn verify_body(path: &str, headers: &HeaderMap, body: &[u8]) -> Result<Verified, AuthError> {
        let payload = if path == "/putMedia" {
            Payload::Streaming
        } else {
            Payload::Body(body)
        };
        let req = Request {
            method: "POST",
            path,
            query: None,
            headers,
            authority: None,
            payload,
        };
        verify(&req, &keys(SECRET), NOW)
    }

    fn sha256_hex(b: &[u8]) -> String {
        hex(digest::digest(&digest::SHA256, b).as_ref())
    }

    #[test]
    fn a_captured_signature_does_not_authorise_another_body() {
        let original = br#"{"StreamARN":"arn:aws:kinesisvideo:us-west-2:000000000000:stream/a/1"}"#;
        let other = br#"{"StreamARN":"arn:aws:kinesisvideo:us-west-2:000000000000:stream/b/2"}"#;
        let headers = signed("/deleteStream", original, &[]);
        assert!(verify_body("/deleteStream", &headers, original).is_ok());
        // The replay of the issue: the signed headers plus an unsigned content hash that vouches
        // for the original body, sent with another body.
        let mut replay = headers.clone();
        replay.insert(
            "x-amz-content-sha256",
            HeaderValue::from_str(&sha256_hex(original)).unwrap(),
        );
        assert!(matches!(
            verify_body("/deleteStream", &replay, other),
            Err(AuthError::ContentHashMismatch(_))
        ));
        // Without the header: the body is hashed, the signature fails.
        assert_eq!(
            verify_body("/deleteStream", &headers, other),
            Err(AuthError::Mismatch)
        );
        // A matching header is fine, in either case of hex.
        let mut honest = headers.clone();
        honest.insert(
            "x-amz-content-sha256",
            HeaderValue::from_str(&sha256_hex(original).to_uppercase()).unwrap(),
        );
        assert!(verify_body("/deleteStream", &honest, original).is_ok());
    }

    #[test]
    fn unsigned_payload_is_refused_on_buffered_bodies_and_taken_on_putmedia() {
        let body = br#"{"StreamName":"s"}"#;
        let literal = [("x-amz-content-sha256", "UNSIGNED-PAYLOAD")];
        let headers = signed("/describeStream", body, &literal);
        let r = verify_body("/describeStream", &headers, body);
        assert!(
            matches!(&r, Err(AuthError::ContentHashMismatch(m)) if m.contains("UNSIGNED-PAYLOAD")),
            "{r:?}"
        );
        let headers = signed("/putMedia", b"", &literal);
        assert!(verify_body("/putMedia", &headers, b"").is_ok());
        let streaming = [("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")];
        let headers = signed("/putMedia", b"", &streaming);
        assert!(verify_body("/putMedia", &headers, b"").is_ok());
        // A hash that cannot be checked on a streaming body is not taken on trust either.
        let hash = sha256_hex(b"media");
        let headers = signed("/putMedia", b"", &[("x-amz-content-sha256", &hash)]);
        assert!(matches!(
            verify_body("/putMedia", &headers, b"media"),
            Err(AuthError::ContentHashMismatch(_))
        ));
    }

    #[test]
    fn http2_signs_the_authority_as_host() {
        let body = b"{}";
        let mut headers = signed("/listStreams", body, &[]);
        headers.remove("host");
        let req = |authority| Request {
            method: "POST",
            path: "/listStreams",
            query: None,
            headers: &headers,
            authority,
            payload: Payload::Body(body),
        };
        assert!(verify(&req(Some("127.0.0.1:8443")), &keys(SECRET), NOW).is_ok());
        assert_eq!(
            verify(&req(Some("127.0.0.1:9999")), &keys(SECRET), NOW),
            Err(AuthError::Mismatch)
        );
        assert!(matches!(
            verify(&req(None), &keys(SECRET), NOW),
            Err(AuthError::Incomplete(_))
        ));
    }

    #[test]
    fn canonical_pieces_follow_the_aws_rules() {
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(canonical_query("x=a%20b&y=a+b&z"), "x=a%20b&y=a%20b&z=");
        let mut out = Vec::new();
        uri_encode(&mut out, b"/a b/%41", false);
        assert_eq!(out, b"/a%20b/%2541");
        let mut out = Vec::new();
        push_trimmed(&mut out, b"  a   b  c ");
        assert_eq!(out, b"a b c");
        assert_eq!(
            parse_amz_date("19700101T000001Z"),
            Some(Timestamp::from_millis(1000))
        );
        assert_eq!(parse_amz_date("20261127T090002"), None);
        assert_eq!(parse_amz_date("20200231T000000Z"), None, "no such day");
        assert!(parse_amz_date("20200229T000000Z").is_some(), "a leap day");
        assert_eq!(parse_amz_date("2026-1127T090002Z"), None);
    }
}
