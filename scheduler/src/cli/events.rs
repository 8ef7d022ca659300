//! `sluice trigger ...` and `sluice notify ...`: workflows started by landings and drift, and
//! webhooks sent when something goes wrong.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// Start a workflow when new objects land under a prefix, or when drift is detected.
    Create(TriggerCreateArgs),
    /// List triggers, with the items waiting for their window.
    List,
    /// A trigger's firings: the window, what it saw, the execution it started.
    Fires {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Stop counting landings or drift for a trigger.
    Pause { name: String },
    /// Count again (what happened while it was paused does not count).
    Resume { name: String },
    /// Delete a trigger (its executions stay).
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct TriggerCreateArgs {
    pub name: String,
    /// The workflow to start.
    #[arg(long)]
    pub workflow: String,
    /// Start it when new objects land under this lake prefix (debounced by --window).
    #[arg(
        long,
        value_name = "PREFIX",
        conflicts_with = "on_drift",
        required_unless_present = "on_drift"
    )]
    pub on_landing: Option<String>,
    /// Start it when a drift report finds drift (of SUBJECT only, when given).
    #[arg(long, value_name = "SUBJECT", num_args = 0..=1, default_missing_value = "")]
    pub on_drift: Option<String>,
    /// Landing: how long a window stays open after its first new object [default: 1m]. Drift:
    /// the least time between two executions [default: 1h]. (30s, 10m, 6h, 2d)
    #[arg(long)]
    pub window: Option<String>,
    /// The executions' input (a JSON object); `trigger` is added to it.
    #[arg(long)]
    pub input: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a webhook on failures, drift, quarantine or rollbacks (replaces a rule of that name).
    Create(NotifyCreateArgs),
    /// List rules (never their secrets).
    List,
    /// Deliveries: what was sent where, its attempts and the receiver's last answer.
    Deliveries(NotifyDeliveriesArgs),
    /// Send a failed delivery again.
    Retry { id: i64 },
    /// Stop queueing notifications for a rule (what is queued is still sent).
    Pause { name: String },
    /// Queue them again (events while it was paused are not sent).
    Resume { name: String },
    /// Delete a rule and its deliveries' records.
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct NotifyCreateArgs {
    pub name: String,
    /// The webhook's URL (http or https).
    #[arg(long)]
    pub url: String,
    /// An event that sends it (repeat): execution.failed, execution.timed_out, drift.detected,
    /// conversion.quarantined, deployment.rolled_back.
    #[arg(long = "on", value_name = "EVENT", required = true)]
    pub events: Vec<String>,
    /// The body: sluice's event document, or Slack's incoming-webhook body.
    #[arg(long, default_value = "json", value_parser = ["json", "slack"])]
    pub format: String,
    /// Only events about this workflow, drift subject, table or endpoint.
    #[arg(long)]
    pub subject: Option<String>,
    /// conversion.quarantined counts past this share of the records read (0 to 1).
    #[arg(long, default_value_t = 0.01)]
    pub min_quarantine_share: f64,
    /// A connection (`sluice connection create`) whose credentials the webhook carries.
    #[arg(long)]
    pub connection: Option<String>,
    /// An environment variable holding the secret that signs each body (X-Sluice-Signature).
    #[arg(long, value_name = "VAR")]
    pub secret_env: Option<String>,
    /// Attempts before a delivery is given up (1 to 20).
    #[arg(long, default_value_t = 8)]
    pub max_attempts: u32,
}

#[derive(Debug, Args)]
pub struct NotifyDeliveriesArgs {
    /// Of this rule only.
    #[arg(long)]
    pub rule: Option<String>,
    /// Of this status only.
    #[arg(long, value_parser = ["pending", "delivered", "failed"])]
    pub status: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
}
