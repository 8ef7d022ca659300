//! Logging in and out, and who is asking. A person logs in with an API token
//! (`ops::serving::sessions`); the session's id travels in the `sluice_session` cookie
//! (HttpOnly, SameSite=Strict, `Path=/ui`, expiring with the session). A state-changing request
//! must come from the console itself: its form carries the session's CSRF value, and a browser's
//! `Origin` or `Sec-Fetch-Site` that names another site is refused before that.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use ops::serving::auth::Scope;
use ops::serving::sessions::{self, SESSION_TTL};

use super::{Chrome, Console, PageError, PageResult, Shared, render};
use crate::http_error::HttpError;

pub const COOKIE: &str = "sluice_session";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The session cookie's value in a request.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Who is asking: an admin session (or anyone, where tokens are off). Pages that change or
/// show operations take this; a request without a session is sent to the login page, one
/// with a weaker token's session is refused.
pub struct Admin {
    pub name: String,
    pub csrf: String,
}

impl Admin {
    pub fn chrome(&self, section: &'static str) -> Chrome {
        Chrome {
            who: Some(self.name.clone()),
            csrf: self.csrf.clone(),
            section,
        }
    }

    /// Refuses a form that does not carry this session's CSRF value.
    pub fn check(&self, csrf: &str) -> Result<(), PageError> {
        if constant_time_eq(csrf.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(PageError(HttpError::Forbidden(
                "this form is stale or did not come from the console: reload the page and try again"
                    .into(),
            )))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A state-changing request from another site (a browser says so in `Sec-Fetch-Site`, or its
/// `Origin` names another host) is refused whatever it carries.
fn cross_site(headers: &HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    match (header("origin"), header("host")) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            !authority.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

impl FromRequestParts<Arc<Console>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        if parts.method != axum::http::Method::GET && cross_site(&parts.headers) {
            return Err(PageError(HttpError::Forbidden(
                "a cross-site request cannot change anything here".into(),
            ))
            .into_response());
        }
        if !console.auth.options.enabled {
            return Ok(Admin {
                name: "anyone (tokens are off)".into(),
                csrf: console.open_csrf.clone(),
            });
        }
        let to_login = || {
            let next = parts.uri.path_and_query().map_or("/ui", |p| p.as_str());
            let target = if parts.method == axum::http::Method::GET {
                next
            } else {
                "/ui"
            };
            Redirect::to(&format!("/ui/login?next={}", super::encode(target))).into_response()
        };
        let Some(id) = cookie(&parts.headers) else {
            return Err(to_login());
        };
        let session = sessions::find(&console.pool, &id, now_ms())
            .await
            .map_err(|err| PageError(HttpError::internal(err)).into_response())?;
        let Some(session) = session else {
            return Err(to_login());
        };
        if !session.scope.allows(Scope::Admin) {
            return Err(PageError(HttpError::Forbidden(format!(
                "you are logged in with a {} token: this page needs an admin token",
                session.scope.as_str()
            )))
            .into_response());
        }
        Ok(Admin {
            name: session.token_name,
            csrf: session.csrf,
        })
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    message: Option<String>,
}

/// Only a path of the console is a place to go after logging in (never another site).
use wire::console::next_address as safe_next;
pub use wire::console::{CsrfForm, LoginForm, NextQuery};

fn login_form(next: String, message: Option<String>) -> LoginPage {
    LoginPage {
        chrome: Chrome {
            who: None,
            csrf: String::new(),
            section: "",
        },
        next,
        message,
    }
}

pub async fn login_page(Query(query): Query<NextQuery>) -> Response {
    render(&login_form(safe_next(query.next.as_deref()), None))
}

pub async fn login(
    axum::extract::State(console): Shared,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> PageResult {
    if cross_site(&headers) {
        return Err(PageError(HttpError::Forbidden(
            "a cross-site request cannot log in".into(),
        )));
    }
    let next = safe_next(form.next.as_deref());
    let opened = sessions::open(&console.pool, form.token.trim(), now_ms(), SESSION_TTL)
        .await
        .map_err(HttpError::internal)?;
    let Some(opened) = opened else {
        let page = login_form(next, Some("unknown or revoked token".into()));
        return Ok((axum::http::StatusCode::UNAUTHORIZED, render(&page)).into_response());
    };
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
        opened.id,
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(HttpError::internal)?,
    );
    Ok(response)
}

pub async fn logout(
    axum::extract::State(console): Shared,
    admin: Admin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    admin.check(&form.csrf)?;
    if let Some(id) = cookie(&headers) {
        sessions::close(&console.pool, &id)
            .await
            .map_err(HttpError::internal)?;
    }
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sluice_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(!cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://localhost:9999"),
        ])));
        assert!(cross_site(&headers(&[
            ("host", "a"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "a"),
            ("sec-fetch-site", "same-site")
        ])));
        assert!(cross_site(&headers(&[("host", "a"), ("origin", "null")])));
    }

    #[test]
    fn cookies_and_destinations() {
        let h = headers(&[("cookie", "a=1; sluice_session=abc; b=2")]);
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
    }
}
