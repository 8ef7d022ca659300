//! The web console at `/ui`: pages rendered on the server from askama templates
//! (`scheduler/templates/console/`), readable without JavaScript, with a vendored htmx
//! (`scheduler/assets/`) refreshing what changes while one looks. Every page and button is an
//! adapter over the same operations the CLI and the JSON API call (`ops::workflows::Workflows`,
//! `ops::serving`); nothing here reads a store or pushes to the queue itself.
//!
//! - [`session`]: logging in with a token, the session cookie, CSRF checks;
//! - [`executions`]: the executions list and an execution's page with its actions;
//! - [`workflows`]: workflows, their versions and diffs, Validate, Save, Start;
//! - [`schedules`]: cron schedules' next ticks, latest ticks, Pause, Resume, Backfill;
//! - [`tables`]: the catalog's tables, schema versions, type changes to decide, partitions;
//! - [`query`]: a SQL box over the catalog's tables;
//! - [`models`]: model groups, versions with lineage and metrics, Promote and Rollback;
//! - [`forecasts`]: stored forecast runs, and a series' history, forecast and later actuals;
//! - [`drift`]: drift reports per series and feature;
//! - [`endpoints`]: endpoints' variants, deployments and live figures per version;
//! - [`graph`]: a definition drawn as SVG, coloured by what an execution did;
//! - [`pretty`]: JSON values shown pretty, large ones folded.

mod canvas;
pub mod drift;
pub mod endpoints;
pub mod executions;
pub mod forecasts;
pub mod graph;
pub mod models;
pub mod pretty;
pub mod query;
pub mod schedules;
pub mod session;
pub mod tables;
pub mod workflows;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ops::workflows::Workflows;
use sqlx::AnyPool;

use crate::http_error::HttpError;
use crate::serving::Auth;

/// What the console's handlers share.
pub struct Console {
    /// None in `sluice serve`, which has no workflows: their pages answer 404 there.
    workflows: Option<Workflows>,
    /// The registry's and the endpoints' operations.
    pub ops: ops::Ops,
    pub auth: Arc<Auth>,
    /// The catalog's pool, where sessions live.
    pub pool: AnyPool,
    /// The CSRF value of forms when tokens are off (local experiments): random per process.
    open_csrf: String,
}

impl Console {
    /// The console of `sluice server` (`workflows` given) or of `sluice serve` (none).
    pub fn new(
        workflows: Option<Workflows>,
        ops: ops::Ops,
        auth: Arc<Auth>,
        pool: AnyPool,
    ) -> Self {
        Self {
            workflows,
            ops,
            auth,
            pool,
            open_csrf: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// The workflow operations, where this process has them.
    pub fn flows(&self) -> Result<&Workflows, PageError> {
        self.workflows.as_ref().ok_or_else(|| {
            PageError(HttpError::NotFound(
                "this process serves predictions only: workflows are on `sluice server`".into(),
            ))
        })
    }
}

type Shared = axum::extract::State<Arc<Console>>;

/// The console's routes, under `/ui`.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/executions", get(executions::list))
        .route("/ui/executions/{id}", get(executions::page))
        .route("/ui/executions/{id}/stop", post(executions::stop))
        .route("/ui/executions/{id}/redrive", post(executions::redrive))
        .route("/ui/executions/{id}/restart", post(executions::restart))
        .route("/ui/workflows", get(workflows::list))
        .route("/ui/workflows/{name}", get(workflows::page))
        .route("/ui/workflows/{name}/validate", post(workflows::validate))
        .route("/ui/workflows/{name}/versions", post(workflows::save))
        .route("/ui/workflows/{name}/start", post(workflows::start))
        .route("/ui/schedules", get(schedules::list))
        .route("/ui/schedules/{name}/pause", post(schedules::pause))
        .route("/ui/schedules/{name}/resume", post(schedules::resume))
        .route("/ui/schedules/{name}/backfill", post(schedules::backfill))
        .route("/ui/tables", get(tables::list))
        .route("/ui/tables/{name}", get(tables::page))
        .route("/ui/tables/{name}/type-changes", post(tables::decide))
        .route(
            "/ui/tables/{name}/runs/{run}/quarantine",
            get(tables::quarantine),
        )
        .route("/ui/query", get(query::form).post(query::run))
        .route("/ui/models", get(models::list))
        .route("/ui/models/{group}", get(models::page))
        .route("/ui/models/{group}/promote", post(models::promote))
        .route("/ui/models/{group}/rollback", post(models::rollback))
        .route("/ui/forecasts", get(forecasts::list))
        .route("/ui/forecasts/{group}", get(forecasts::group))
        .route("/ui/forecasts/{group}/{run}", get(forecasts::page))
        .route("/ui/drift", get(drift::list))
        .route("/ui/drift/{id}", get(drift::page))
        .route("/ui/endpoints", get(endpoints::list))
        .route("/ui/endpoints/{name}", get(endpoints::page))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

/// The first page: executions where this process runs workflows, models where it serves.
async fn home(axum::extract::State(console): Shared) -> Redirect {
    Redirect::to(if console.workflows.is_some() {
        "/ui/executions"
    } else {
        "/ui/models"
    })
}

/// Pages are not cached, framed, or allowed to run scripts from elsewhere.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The vendored script and the style sheet, compiled in.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static str, &'static str) = match file.as_str() {
        "htmx.min.js" => (include_str!("../../assets/htmx.min.js"), "text/javascript"),
        "console.css" => (include_str!("../../assets/console.css"), "text/css"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// What every page's frame shows: who is logged in, and the CSRF value its forms send.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub who: Option<String>,
    pub csrf: String,
    /// The section the page belongs to, highlighted in the navigation.
    pub section: &'static str,
}

/// A page that could not be shown, as an HTML page with the status of the API's error.
#[derive(Debug)]
pub struct PageError(pub HttpError);

impl From<HttpError> for PageError {
    fn from(err: HttpError) -> Self {
        Self(err)
    }
}

impl From<wire::console::Refused> for PageError {
    /// A form that does not read: 400, naming the field.
    fn from(refused: wire::console::Refused) -> Self {
        Self(HttpError::BadRequest(refused.to_string()))
    }
}

impl From<ops::Error> for PageError {
    fn from(err: ops::Error) -> Self {
        Self(HttpError::from(err))
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    reason: String,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let message = self.0.message();
        let page = ErrorPage {
            chrome: Chrome {
                who: None,
                csrf: String::new(),
                section: "",
            },
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("error").to_owned(),
            message,
        };
        (status, render(&page)).into_response()
    }
}

/// A template rendered to a response (a template that fails to render is a 500, logged).
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => HttpError::internal(err).into_response(),
    }
}

/// The result of a page handler.
pub type PageResult = Result<Response, PageError>;

/// After a form: see the result's page (POST, then redirect, then GET).
pub fn see(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// A path segment, percent-encoded for a link.
pub fn encode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
