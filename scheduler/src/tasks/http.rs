//! The HTTP Task (`arn:aws:states:::http:invoke`), as Step Functions has it: `ApiEndpoint`,
//! `Method`, `Headers`, `QueryParameters`, `RequestBody` (JSON, or URL-encoded with
//! `Transform`), authentication from a stored connection (`Authentication.ConnectionArn`), the
//! response as `{Headers, ResponseBody, StatusCode, StatusText}`, and errors by Step Functions'
//! names: `States.Http.StatusCode.<code>` for a response outside 2xx (its cause the response as
//! JSON), `States.Http.Socket` when no response came (refused, reset, 60 s without one).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::asl::Failure;

/// The resource that names the HTTP Task.
pub const RESOURCE: &str = "arn:aws:states:::http:invoke";

/// How long a request may go without its response, as in Step Functions.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of a response body kept (Step Functions' payload limit).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// The HTTP Task's input (Step Functions' field names).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct HttpInvoke {
    api_endpoint: String,
    method: Method,
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    #[serde(default)]
    query_parameters: Map<String, Value>,
    #[serde(default)]
    request_body: Option<Value>,
    #[serde(default)]
    authentication: Option<Authentication>,
    #[serde(default)]
    transform: Option<Transform>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Authentication {
    connection_arn: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Transform {
    request_body_encoding: Encoding,
    #[serde(default)]
    request_encoding_options: Option<EncodingOptions>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Encoding {
    None,
    UrlEncoded,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct EncodingOptions {
    array_format: ArrayFormat,
}

/// How arrays are URL-encoded (`a: [1, 2]`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum ArrayFormat {
    /// `a[]=1&a[]=2`
    Brackets,
    /// `a=1,2`
    Commas,
    /// `a[0]=1&a[1]=2`
    #[default]
    Indices,
    /// `a=1&a=2`
    Repeat,
}

/// The HTTP Task's output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct HttpOutput {
    /// Response headers by lower-case name, each with its values.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The body: parsed when it is JSON, text otherwise.
    pub response_body: Value,
    pub status_code: u16,
    pub status_text: String,
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Flattens a JSON value into form pairs: objects as `key[field]`, arrays per `format`.
fn pairs(prefix: &str, value: &Value, format: ArrayFormat, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) => {
            for (field, value) in fields {
                let key = if prefix.is_empty() {
                    field.clone()
                } else {
                    format!("{prefix}[{field}]")
                };
                pairs(&key, value, format, out);
            }
        }
        Value::Array(items) => match format {
            ArrayFormat::Commas => out.push((
                prefix.to_owned(),
                items.iter().map(scalar).collect::<Vec<_>>().join(","),
            )),
            ArrayFormat::Repeat => {
                for item in items {
                    pairs(prefix, item, format, out);
                }
            }
            ArrayFormat::Brackets => {
                for item in items {
                    pairs(&format!("{prefix}[]"), item, format, out);
                }
            }
            ArrayFormat::Indices => {
                for (i, item) in items.iter().enumerate() {
                    pairs(&format!("{prefix}[{i}]"), item, format, out);
                }
            }
        },
        Value::Null => {}
        other => out.push((prefix.to_owned(), scalar(other))),
    }
}

fn socket(endpoint: &str, err: impl std::fmt::Display) -> Failure {
    Failure::new(
        "States.Http.Socket",
        format!("{endpoint}: no response: {err}"),
    )
}

/// Sends the request; a response outside 2xx is `States.Http.StatusCode.<code>`.
pub(super) async fn invoke(input: &Value, ops: &ops::Ops) -> Result<Value, Failure> {
    let call: HttpInvoke = super::request(input)?;
    let format = call
        .transform
        .as_ref()
        .and_then(|t| t.request_encoding_options.as_ref())
        .map(|o| o.array_format)
        .unwrap_or_default();
    let method = match call.method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
        Method::Head => reqwest::Method::HEAD,
        Method::Options => reqwest::Method::OPTIONS,
    };
    let mut url = reqwest::Url::parse(&call.api_endpoint)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            Failure::new(
                "Sluice.InvalidInput",
                format!("ApiEndpoint: {:?} is not an http(s) URL", call.api_endpoint),
            )
        })?;
    let connection = match &call.authentication {
        Some(auth) => Some(
            ops.connection(ops::connection_name(&auth.connection_arn))
                .await?,
        ),
        None => None,
    };
    let mut query = Vec::new();
    pairs(
        "",
        &Value::Object(call.query_parameters),
        format,
        &mut query,
    );
    if let Some(connection) = &connection {
        query.extend(connection.query.clone());
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(&query);
    }
    jobs::install_tls();
    let client = reqwest::Client::builder()
        .timeout(SOCKET_TIMEOUT)
        .build()
        .map_err(|e| socket(&call.api_endpoint, e))?;
    let mut request = client.request(method, url);
    for (name, value) in &call.headers {
        request = request.header(name.as_str(), scalar(value));
    }
    if let Some(connection) = &connection {
        request = match &connection.authorization {
            ops::Authorization::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
            ops::Authorization::ApiKey { header, value } => {
                request.header(header.as_str(), value.as_str())
            }
            ops::Authorization::Bearer { token } => request.bearer_auth(token),
        };
        for (name, value) in &connection.headers {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    let encoding = call
        .transform
        .as_ref()
        .map_or(Encoding::None, |t| t.request_body_encoding);
    request = match (&call.request_body, encoding) {
        (None, _) => request,
        (Some(body), Encoding::UrlEncoded) => {
            let mut form = Vec::new();
            pairs("", body, format, &mut form);
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&form)
                .finish();
            request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encoded)
        }
        (Some(Value::String(text)), Encoding::None) => request.body(text.clone()),
        (Some(body), Encoding::None) => request.json(body),
    };
    let response = request
        .send()
        .await
        .map_err(|e| socket(&call.api_endpoint, e))?;
    let status = response.status();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in response.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.first())
        .is_some_and(|t| t.contains("json"));
    let bytes = response
        .bytes()
        .await
        .map_err(|e| socket(&call.api_endpoint, e))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Failure::new(
            "States.DataLimitExceeded",
            format!(
                "{}: the response body is {} bytes, over the 256 KiB a state's data may hold",
                call.api_endpoint,
                bytes.len()
            ),
        ));
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = match is_json {
        true => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        false => Value::String(text),
    };
    let output = HttpOutput {
        headers,
        response_body: body,
        status_code: status.as_u16(),
        status_text: status.canonical_reason().unwrap_or("").to_owned(),
    };
    if !status.is_success() {
        return Err(Failure::new(
            format!("States.Http.StatusCode.{}", status.as_u16()),
            json!({"StatusCode": output.status_code, "StatusText": output.status_text,
                   "ResponseBody": output.response_body})
            .to_string(),
        ));
    }
    Ok(serde_json::to_value(output).expect("serializes"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{ArrayFormat, pairs};

    #[test]
    fn bodies_and_queries_are_url_encoded_as_configured() {
        let body = json!({"a": [1, 2], "b": {"c": "x y"}, "d": true, "e": null});
        let encode = |format| {
            let mut out = Vec::new();
            pairs("", &body, format, &mut out);
            out.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert_eq!(
            encode(ArrayFormat::Indices),
            "a[0]=1&a[1]=2&b[c]=x y&d=true"
        );
        assert_eq!(encode(ArrayFormat::Brackets), "a[]=1&a[]=2&b[c]=x y&d=true");
        assert_eq!(encode(ArrayFormat::Commas), "a=1,2&b[c]=x y&d=true");
        assert_eq!(encode(ArrayFormat::Repeat), "a=1&a=2&b[c]=x y&d=true");
    }
}
