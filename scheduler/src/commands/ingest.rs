//! `sluice ingest stream create|list|describe`: delivery streams, adapters over
//! `ops::ingest::streams`. The flags given become the request's fields; the defaults are the
//! request's (Firehose's), written once.

use ops::ingest::{StreamRequest, StreamView};
use serde_json::{Map, Value, json};

use super::Context;
use crate::cli::{IngestCommand, StreamCommand, StreamCreateArgs};
use crate::output::{Report, table, time};

pub async fn run(command: &IngestCommand, context: &Context) -> anyhow::Result<Report> {
    let ops = &context.ops;
    let command = match command {
        IngestCommand::Stream(command) => command,
        IngestCommand::Mqtt => {
            crate::process::mqtt_bridge(context).await?;
            return Ok(Report::new(json!({"stopped": true}), "MQTT bridge stopped"));
        }
    };
    match command {
        StreamCommand::Create(args) => {
            let stream = ops.create_delivery_stream(&stream_request(args)?).await?;
            let text = format!(
                "delivery stream {} created\n{}",
                stream.name,
                describe(&stream)
            );
            Ok(Report::new(serde_json::to_value(&stream)?, text))
        }
        StreamCommand::List => {
            let streams = ops.delivery_streams().await?;
            let text = table(
                [
                    "stream",
                    "version",
                    "prefix",
                    "buffer",
                    "compression",
                    "created",
                ],
                streams.iter().map(|s| {
                    [
                        s.name.clone(),
                        s.version.to_string(),
                        s.definition.prefix.clone(),
                        buffer(s),
                        format!("{:?}", s.definition.compression).to_uppercase(),
                        time(s.created_at),
                    ]
                }),
            );
            Ok(Report::new(serde_json::to_value(&streams)?, text))
        }
        StreamCommand::Describe(args) => {
            let stream = ops.delivery_stream(&args.name).await?;
            Ok(Report::new(
                serde_json::to_value(&stream)?,
                describe(&stream),
            ))
        }
    }
}

/// The request the flags make: only the flags given, so that defaults are the request's.
pub(crate) fn stream_request(args: &StreamCreateArgs) -> anyhow::Result<StreamRequest> {
    let mut fields = Map::new();
    fields.insert("name".into(), json!(args.name));
    fields.insert("prefix".into(), json!(args.prefix));
    let mut given = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            fields.insert(name.into(), value);
        }
    };
    given(
        "error_output_prefix",
        args.error_output_prefix.as_ref().map(|v| json!(v)),
    );
    given("buffer_mib", args.buffer_mib.map(|v| json!(v)));
    given("buffer_seconds", args.buffer_seconds.map(|v| json!(v)));
    given("compression", args.gzip.then(|| json!("GZIP")));
    given("append_newline", args.append_newline.then(|| json!(true)));
    Ok(ops::request::from_json(fields.into())?)
}

fn buffer(stream: &StreamView) -> String {
    format!(
        "{} MiB or {} s",
        stream.definition.buffer_bytes >> 20,
        stream.definition.buffer_seconds
    )
}

fn describe(stream: &StreamView) -> String {
    let d = &stream.definition;
    table(
        ["field", "value"],
        [
            ["stream".into(), stream.name.clone()],
            ["version".into(), stream.version.to_string()],
            ["prefix".into(), d.prefix.clone()],
            ["error output prefix".into(), d.error_output_prefix.clone()],
            ["buffer".into(), buffer(stream)],
            [
                "compression".into(),
                format!("{:?}", d.compression).to_uppercase(),
            ],
            [
                "newline after each record".into(),
                d.append_newline.to_string(),
            ],
            ["created".into(), time(stream.created_at)],
        ],
    )
}
