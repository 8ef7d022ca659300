//! `sluice endpoint`, `sluice token` and `sluice serve`: endpoint definitions, API tokens, and a
//! process serving the prediction endpoints alone (scale serving apart from the workers).

use ops::serving::{DeployRequest, EndpointRequest, TokenRequest};
use serde_json::json;

use super::Context;
use crate::cli::{EndpointCommand, EndpointCreateArgs, ServeArgs, TokenCommand};
use crate::output::{Report, table, time};

pub async fn endpoint(command: &EndpointCommand, context: &Context) -> anyhow::Result<Report> {
    let ops = &context.ops;
    match command {
        EndpointCommand::Create(EndpointCreateArgs {
            name,
            group,
            variants,
        }) => {
            let request = EndpointRequest {
                name: name.clone(),
                group: group.clone(),
                variants: variants.clone(),
            };
            let endpoint = ops.put_endpoint(&request).await?;
            Ok(Report::new(
                json!({"endpoint": endpoint.endpoint, "group": endpoint.group, "generation": endpoint.generation}),
                format!(
                    "endpoint {} serves {} ({})",
                    endpoint.endpoint,
                    endpoint.group,
                    endpoint
                        .variants
                        .iter()
                        .map(|v| format!("{}={}:{}", v.variant, v.target, v.weight))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
        EndpointCommand::Deploy(args) => {
            let request = deploy_request(args)?;
            let started = ops.deploy(&args.endpoint, &request).await?;
            Ok(Report::new(
                serde_json::to_value(&started)?,
                format!(
                    "deployment {}: v{} to {} ({}); servers take the next steps",
                    started.deployment, started.version, started.endpoint, request.strategy
                ),
            ))
        }
        EndpointCommand::Deployments(args) => {
            let all = ops.deployments(args.endpoint.as_deref()).await?;
            let version = |v: Option<u32>| v.map(|v| format!("v{v}")).unwrap_or_default();
            let text = table(
                ["id", "endpoint", "from", "to", "status", "weight", "reason"],
                all.iter().map(|d| {
                    [
                        d.id.clone(),
                        d.endpoint.clone(),
                        version(d.from_version),
                        version(Some(d.to_version)),
                        d.status.clone(),
                        format!("{} %", d.weight),
                        d.reason.clone().unwrap_or_default(),
                    ]
                }),
            );
            Ok(Report::new(json!(all), text))
        }
        EndpointCommand::List => {
            let all = ops.endpoints().await?;
            let rows = all.iter().flat_map(|endpoint| {
                endpoint.variants.iter().map(|v| {
                    [
                        endpoint.endpoint.clone(),
                        endpoint.group.clone(),
                        v.variant.clone(),
                        v.target.clone(),
                        v.weight.to_string(),
                    ]
                })
            });
            let text = table(["endpoint", "group", "variant", "target", "weight"], rows);
            Ok(Report::new(serde_json::to_value(&all)?, text))
        }
    }
}

/// `sluice endpoint deploy`'s flags as the request: only the flags given, so the defaults are
/// the operation's.
pub(crate) fn deploy_request(args: &crate::cli::DeployArgs) -> anyhow::Result<DeployRequest> {
    let mut fields = serde_json::Map::new();
    fields.insert("version".into(), json!(args.target));
    let mut given = |name: &str, value: Option<serde_json::Value>| {
        if let Some(value) = value {
            fields.insert(name.into(), value);
        }
    };
    given("strategy", args.strategy.as_ref().map(|v| json!(v)));
    given("percent", args.percent.map(|v| json!(v)));
    given("bake_seconds", args.bake_seconds.map(|v| json!(v)));
    given("max_error_rate", args.max_error_rate.map(|v| json!(v)));
    given("max_p99_ms", args.max_p99_ms.map(|v| json!(v)));
    given("min_requests", args.min_requests.map(|v| json!(v)));
    ops::request::from_json(fields.into())
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("version:", "--model:")))
}

pub async fn token(command: &TokenCommand, context: &Context) -> anyhow::Result<Report> {
    let ops = &context.ops;
    match command {
        TokenCommand::Create(args) => {
            let request = TokenRequest {
                scope: args.scope.clone(),
                name: args.name.clone(),
            };
            let created = ops.create_token(&request).await?;
            let mut text = format!(
                "token {} ({} scope); keep it, it is not shown again:\n{}",
                created.id, created.scope, created.token
            );
            if let (Some(id), Some(secret)) = (&created.access_key_id, &created.secret_access_key) {
                text.push_str(&format!(
                    "\nfor AWS SDKs and the AWS CLI (SigV4):\naws_access_key_id = {id}\naws_secret_access_key = {secret}"
                ));
            }
            Ok(Report::new(serde_json::to_value(&created)?, text))
        }
        TokenCommand::List => {
            let tokens = ops.tokens().await?;
            let text = table(
                ["id", "name", "scope", "created", "revoked"],
                tokens.iter().map(|t| {
                    [
                        t.id.clone(),
                        t.name.clone(),
                        t.scope.clone(),
                        time(t.created_at),
                        t.revoked_at.map(time).unwrap_or_default(),
                    ]
                }),
            );
            Ok(Report::new(serde_json::to_value(&tokens)?, text))
        }
        TokenCommand::Revoke(args) => {
            ops.revoke_token(&args.id).await?;
            Ok(Report::new(
                json!({"revoked": args.id}),
                format!("token {} revoked", args.id),
            ))
        }
    }
}

/// `sluice serve`: the prediction endpoints until SIGTERM.
pub async fn serve(args: &ServeArgs, context: &Context) -> anyhow::Result<Report> {
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| context.config.serve.listen.clone());
    let address = crate::process::serve(context, &listen).await?;
    Ok(Report::new(
        json!({"serve": format!("http://{address}"), "stopped": true}),
        format!("serving on http://{address} stopped"),
    ))
}
