//! `sluice endpoint`, `sluice token` and `sluice serve`: endpoint definitions, API tokens, and a
//! process serving the prediction endpoints alone (scale serving apart from the workers).

use models::registry::GroupName;
use serde_json::json;

use super::Context;
use crate::cli::{EndpointCommand, EndpointCreateArgs, ServeArgs, TokenCommand};
use crate::output::{Report, table, time};
use crate::serving::auth;
use crate::serving::endpoints::{self, EndpointSpec, Variant};

pub async fn endpoint(command: &EndpointCommand, context: &Context) -> anyhow::Result<Report> {
    let catalog = context.catalog().await?;
    match command {
        EndpointCommand::Create(EndpointCreateArgs {
            name,
            group,
            variants,
        }) => {
            let variants = variants
                .iter()
                .map(|v| Variant::parse(v))
                .collect::<Result<Vec<_>, _>>()?;
            let spec = EndpointSpec::new(name, GroupName::parse(group)?, variants)?;
            let generation = endpoints::put(catalog.pool(), &spec).await?;
            Ok(Report::new(
                json!({"endpoint": spec.name, "group": spec.group, "generation": generation}),
                format!(
                    "endpoint {} serves {} ({})",
                    spec.name,
                    spec.group,
                    spec.variants
                        .iter()
                        .map(|v| format!("{}={}:{}", v.name, v.target, v.weight))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
        EndpointCommand::Deploy(args) => {
            use crate::serving::deployments::{Settings, Strategy, start};
            let strategy = Strategy::parse(&args.strategy, args.percent)?;
            let models::registry::Target::Version(version) =
                models::registry::Target::parse(&args.target)?
            else {
                anyhow::bail!("--model takes a version number (3 or v3)");
            };
            let settings = Settings {
                strategy,
                bake: std::time::Duration::from_secs_f64(args.bake_seconds.max(0.0)),
                max_error_rate: args.max_error_rate,
                max_p99_ms: args.max_p99_ms,
                min_requests: args.min_requests,
            };
            let id = start(catalog.pool(), &args.endpoint, version, settings).await?;
            Ok(Report::new(
                json!({"deployment": id, "endpoint": args.endpoint, "version": version}),
                format!(
                    "deployment {id}: v{version} to {} ({}); servers take the next steps",
                    args.endpoint, args.strategy
                ),
            ))
        }
        EndpointCommand::Deployments(args) => {
            let all =
                crate::serving::deployments::list(catalog.pool(), args.endpoint.as_deref()).await?;
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
            let all = endpoints::list(catalog.pool()).await?;
            let rows = all.iter().flat_map(|(spec, _)| {
                spec.variants.iter().map(|v| {
                    [
                        spec.name.clone(),
                        spec.group.to_string(),
                        v.name.clone(),
                        v.target.to_string(),
                        v.weight.to_string(),
                    ]
                })
            });
            let text = table(["endpoint", "group", "variant", "target", "weight"], rows);
            let json =
                json!(all.iter().map(|(spec, generation)| json!({
                "endpoint": spec.name,
                "group": spec.group,
                "generation": generation,
                "variants": spec.variants.iter().map(|v| json!({
                    "variant": v.name, "target": v.target.to_string(), "weight": v.weight,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>());
            Ok(Report::new(json, text))
        }
    }
}

pub async fn token(command: &TokenCommand, context: &Context) -> anyhow::Result<Report> {
    let catalog = context.catalog().await?;
    match command {
        TokenCommand::Create(args) => {
            let scope = auth::Scope::parse(&args.scope)?;
            let (id, secret) = auth::create(catalog.pool(), scope, &args.name).await?;
            Ok(Report::new(
                json!({"id": id, "scope": scope.as_str(), "token": secret}),
                format!(
                    "token {id} ({} scope); keep it, it is not shown again:\n{secret}",
                    scope.as_str()
                ),
            ))
        }
        TokenCommand::List => {
            let tokens = auth::list(catalog.pool()).await?;
            let text = table(
                ["id", "name", "scope", "created", "revoked"],
                tokens.iter().map(|t| {
                    [
                        t["id"].as_str().unwrap_or_default().to_owned(),
                        t["name"].as_str().unwrap_or_default().to_owned(),
                        t["scope"].as_str().unwrap_or_default().to_owned(),
                        time(t["created_at"].as_i64().unwrap_or_default()),
                        t["revoked_at"].as_i64().map(time).unwrap_or_default(),
                    ]
                }),
            );
            Ok(Report::new(json!(tokens), text))
        }
        TokenCommand::Revoke(args) => {
            anyhow::ensure!(
                auth::revoke(catalog.pool(), &args.id).await?,
                "no live token {}",
                args.id
            );
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
