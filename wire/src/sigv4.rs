//! AWS Signature Version 4, checked: what AWS SDKs and the AWS CLI sign every request with
//! (`Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261205/us-east-1/firehose/aws4_request,
//! SignedHeaders=host;x-amz-date, Signature=<hex>`). A signature is checked by computing it
//! again from the request and the access key's secret ([`verify`]); [`sign`] is the same
//! computation, for clients sluice ships (the ingest benchmark) and the tests.
//!
//! The canonical request follows AWS's specification for services other than S3: the path
//! URI-encoded once more, the query's parameters decoded, encoded again and sorted, the signed
//! headers lowercased with their values trimmed and inner spaces collapsed, and the payload's
//! SHA-256 (an `x-amz-content-sha256` header must match the body). A request dated more than
//! [`MAX_SKEW`] from the server's clock is refused, as AWS refuses it.

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The one algorithm SDKs sign with.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far a request's `X-Amz-Date` may be from the server's clock.
pub const MAX_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// A request as received: its path and query as sent (still percent-encoded), every header.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Without the `?`.
    pub query: &'a str,
    /// Names in any case; a name may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `YYYYMMDD`, the credential scope's date.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lowercase, in the order signed.
    pub signed_headers: Vec<String>,
    /// Lowercase hex.
    pub signature: String,
}

/// Why a request's signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing authentication token: the request is not signed")]
    Missing,
    #[error("malformed authorization header: {0}")]
    Malformed(String),
    #[error("signature expired: {at} is more than 15 minutes from the server's time {now}")]
    Expired { at: String, now: String },
    #[error(
        "the request signature we calculated does not match the signature you provided: check \
         the secret access key and the signing method"
    )]
    Mismatch,
}

impl Authorization {
    /// Parses an `Authorization` header's value.
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let malformed = |what: &str| SignatureError::Malformed(what.to_owned());
        let rest = header
            .trim()
            .strip_prefix(ALGORITHM)
            .ok_or_else(|| malformed("the algorithm must be AWS4-HMAC-SHA256"))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (name, value) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| malformed("expected Credential=, SignedHeaders= and Signature="))?;
            match name.trim() {
                "Credential" => credential = Some(value.trim()),
                "SignedHeaders" => signed = Some(value.trim()),
                "Signature" => signature = Some(value.trim()),
                other => return Err(malformed(&format!("unknown component {other:?}"))),
            }
        }
        let credential = credential.ok_or_else(|| malformed("no Credential"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [key, date, region, service, "aws4_request"] = scope[..] else {
            return Err(malformed(
                "Credential must be KEY/YYYYMMDD/REGION/SERVICE/aws4_request",
            ));
        };
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("the credential's date must be YYYYMMDD"));
        }
        let signed_headers: Vec<String> = signed
            .ok_or_else(|| malformed("no SignedHeaders"))?
            .split(';')
            .map(str::to_ascii_lowercase)
            .collect();
        if !signed_headers.iter().any(|h| h == "host") {
            return Err(malformed("the host header must be signed"));
        }
        let signature = signature.ok_or_else(|| malformed("no Signature"))?;
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed("the signature must be 64 hexadecimal digits"));
        }
        Ok(Self {
            access_key_id: key.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            signed_headers,
            signature: signature.to_ascii_lowercase(),
        })
    }

    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// Checks `request`'s signature, made with `secret` for `authorization`'s access key, at `now`.
pub fn verify(
    request: &Request<'_>,
    authorization: &Authorization,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let amz_date = header(request, "x-amz-date")
        .ok_or_else(|| SignatureError::Malformed("no X-Amz-Date header".into()))?;
    let at = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| SignatureError::Malformed("X-Amz-Date must be YYYYMMDDTHHMMSSZ".into()))?
        .and_utc();
    if !amz_date.starts_with(&authorization.date) {
        return Err(SignatureError::Malformed(
            "the credential's date is not X-Amz-Date's".into(),
        ));
    }
    if (now - at).abs() > MAX_SKEW {
        return Err(SignatureError::Expired {
            at: amz_date.to_owned(),
            now: now.format("%Y%m%dT%H%M%SZ").to_string(),
        });
    }
    let expected = signature(request, authorization, amz_date, secret)?;
    let given = decode_hex(&authorization.signature).ok_or(SignatureError::Mismatch)?;
    // The MAC's own comparison, in constant time.
    let mut mac = signing_mac(secret, authorization);
    mac.update(expected.string_to_sign.as_bytes());
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `Authorization` header value that signs `request` (which must carry `host` and
/// `x-amz-date`, and `signed_headers` of it) with the access key `key_id` and its `secret`.
pub fn sign(
    request: &Request<'_>,
    key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    signed_headers: &[&str],
) -> Result<String, SignatureError> {
    let amz_date = header(request, "x-amz-date")
        .ok_or_else(|| SignatureError::Malformed("no X-Amz-Date header".into()))?;
    let authorization = Authorization {
        access_key_id: key_id.to_owned(),
        date: amz_date.get(..8).unwrap_or_default().to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        signature: String::new(),
    };
    let computed = signature(request, &authorization, amz_date, secret)?;
    Ok(format!(
        "{ALGORITHM} Credential={key_id}/{}, SignedHeaders={}, Signature={}",
        authorization.scope(),
        authorization.signed_headers.join(";"),
        computed.hex
    ))
}

struct Computed {
    string_to_sign: String,
    hex: String,
}

fn signature(
    request: &Request<'_>,
    authorization: &Authorization,
    amz_date: &str,
    secret: &str,
) -> Result<Computed, SignatureError> {
    let canonical = canonical_request(request, &authorization.signed_headers)?;
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        authorization.scope(),
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut mac = signing_mac(secret, authorization);
    mac.update(string_to_sign.as_bytes());
    Ok(Computed {
        hex: hex(&mac.finalize().into_bytes()),
        string_to_sign,
    })
}

/// The MAC keyed with the day's signing key: HMAC chained over date, region, service.
fn signing_mac(secret: &str, authorization: &Authorization) -> Hmac<Sha256> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [
        authorization.date.as_str(),
        &authorization.region,
        &authorization.service,
        "aws4_request",
    ] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key");
        mac.update(part.as_bytes());
        key = mac.finalize().into_bytes().to_vec();
    }
    Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key")
}

fn canonical_request(
    request: &Request<'_>,
    signed_headers: &[String],
) -> Result<String, SignatureError> {
    let body_hash = hex(&Sha256::digest(request.body));
    if let Some(claimed) = header(request, "x-amz-content-sha256")
        && !claimed.eq_ignore_ascii_case(&body_hash)
    {
        // Also refuses UNSIGNED-PAYLOAD, which only S3 accepts.
        return Err(SignatureError::Mismatch);
    }
    let path = if request.path.is_empty() {
        "/".to_owned()
    } else {
        encode(request.path, true)
    };
    let mut query: Vec<(String, String)> = request
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(name), false), encode(&decode(value), false))
        })
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SignatureError::Malformed(format!(
                "signed header {name} is not in the request"
            )));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{}\n{path}\n{query}\n{headers}\n{}\n{body_hash}",
        request.method,
        signed_headers.join(";")
    ))
}

fn header<'a>(request: &Request<'a>, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// RFC 3986 encoding of everything but unreserved characters (and `/` in a path).
fn encode(text: &str, path: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) || (path && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lowercase hexadecimal of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn at(text: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ")
            .unwrap()
            .and_utc()
    }

    /// AWS's published test suite, `get-vanilla` and `get-vanilla-query-order-key-case`.
    #[test]
    fn aws_test_suite_signatures() {
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ];
        for (query, signature) in [
            (
                "",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
        ] {
            let request = Request {
                method: "GET",
                path: "/",
                query,
                headers: &headers,
                body: b"",
            };
            let header = format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={signature}"
            );
            let authorization = Authorization::parse(&header).unwrap();
            verify(&request, &authorization, SECRET, at("20150830T123600Z")).unwrap();
            let signed = sign(
                &request,
                "AKIDEXAMPLE",
                SECRET,
                "us-east-1",
                "service",
                &["host", "x-amz-date"],
            )
            .unwrap();
            assert_eq!(signed, header);
        }
    }

    #[test]
    fn tampering_expiry_and_malformed_headers_are_refused() {
        let headers = [
            ("host", "127.0.0.1:8080"),
            ("x-amz-date", "20261205T030000Z"),
            ("x-amz-target", "Firehose_20150804.PutRecordBatch"),
        ];
        let request = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: br#"{"DeliveryStreamName":"telemetry"}"#,
        };
        let signed = sign(
            &request,
            "SLUIEXAMPLE",
            "s3cret",
            "eu-west-1",
            "firehose",
            &["host", "x-amz-date", "x-amz-target"],
        )
        .unwrap();
        let authorization = Authorization::parse(&signed).unwrap();
        let now = at("20261205T030500Z");
        verify(&request, &authorization, "s3cret", now).unwrap();
        assert_eq!(
            verify(&request, &authorization, "other", now),
            Err(SignatureError::Mismatch)
        );
        let tampered = Request {
            body: br#"{"DeliveryStreamName":"other"}"#,
            ..request
        };
        assert_eq!(
            verify(&tampered, &authorization, "s3cret", now),
            Err(SignatureError::Mismatch)
        );
        let retargeted = [
            headers[0],
            headers[1],
            ("x-amz-target", "Firehose_20150804.DeleteDeliveryStream"),
        ];
        let retargeted = Request {
            headers: &retargeted,
            ..request
        };
        assert_eq!(
            verify(&retargeted, &authorization, "s3cret", now),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify(&request, &authorization, "s3cret", at("20261205T032000Z")),
            Err(SignatureError::Expired { .. })
        ));
        for bad in [
            "",
            "AWS4-HMAC-SHA1 Credential=a/20261205/r/s/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/2026/r/s/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/20261205/r/s/aws4_request, SignedHeaders=x-amz-date, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/20261205/r/s/aws4_request, SignedHeaders=host, Signature=zz",
        ] {
            assert!(
                matches!(Authorization::parse(bad), Err(SignatureError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
