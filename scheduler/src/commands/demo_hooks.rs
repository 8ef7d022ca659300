//! The demo's outside world, on a loopback port of its own: the on-call team's webhook (what
//! sluice's notification rule sends, kept to be printed) and a partner's API that is down (503),
//! which the night's forecasts are sent to.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

/// The running receiver.
pub struct Hooks {
    /// Where notifications go.
    pub on_call: String,
    /// The partner's API.
    pub partner: String,
    received: Arc<Mutex<Vec<Value>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Hooks {
    pub async fn start() -> anyhow::Result<Self> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        let app = axum::Router::new()
            .route(
                "/on-call",
                post(move |body: axum::Json<Value>| {
                    let kept = kept.clone();
                    async move {
                        kept.lock().expect("not poisoned").push(body.0);
                        StatusCode::NO_CONTENT
                    }
                }),
            )
            .route(
                "/partner/forecasts",
                post(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({"message": "maintenance until 06:00 UTC"})),
                    )
                }),
            );
        let listener = crate::process::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            on_call: format!("{base}/on-call"),
            partner: format!("{base}/partner/forecasts"),
            received,
            server,
        })
    }

    /// The notifications received so far, in order.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().expect("not poisoned").clone()
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.server.abort();
    }
}
