//! The arguments of `sluice ingest`: delivery streams that `sluice server` takes records for
//! (the Firehose API, Firehose's HTTP endpoint delivery).

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum IngestCommand {
    /// Delivery streams.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Run the MQTT bridge of `[ingest.mqtt]` alone until SIGTERM (`sluice server` runs it
    /// too when configured); give it a write-ahead log directory of its own.
    Mqtt,
}

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Create a delivery stream (as Firehose's CreateDeliveryStream).
    Create(StreamCreateArgs),
    /// The delivery streams.
    List,
    /// One delivery stream's definition.
    Describe(StreamNameArgs),
}

#[derive(Debug, Args)]
pub struct StreamCreateArgs {
    pub name: String,
    /// The lake prefix of its objects; `!{timestamp:yyyy/MM/dd}` expressions as Firehose's,
    /// else `YYYY/MM/DD/HH/` follows it.
    #[arg(long)]
    pub prefix: String,
    /// Where records that cannot be delivered go [default: processing-failed/].
    #[arg(long)]
    pub error_output_prefix: Option<String>,
    /// Seal an object at this many MiB of records (1 to 128) [default: 5].
    #[arg(long)]
    pub buffer_mib: Option<u64>,
    /// ...or this many seconds after its first record (0 to 900) [default: 300].
    #[arg(long)]
    pub buffer_seconds: Option<u64>,
    /// Gzip the objects.
    #[arg(long)]
    pub gzip: bool,
    /// Write a newline after each record (Firehose's AppendDelimiterToRecord).
    #[arg(long)]
    pub append_newline: bool,
}

#[derive(Debug, Args)]
pub struct StreamNameArgs {
    pub name: String,
}
