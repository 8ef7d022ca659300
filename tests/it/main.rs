//! sluice's integration tests: one binary, one module per area, the harness in `tests/harness.rs`.

mod api;
mod asl_conformance;
mod catalog_backends;
mod cli;
mod cli_workflows;
mod convert;
mod crawler_bad_input;
mod crawler_formats;
mod demo;
mod dirty_data;
mod drift;
mod forecasting;
mod forecasting_pipeline;
mod migrations;
mod nightly;
mod orchestrator;
mod parquet_landings;
mod publishing;
mod registry;
mod s3_lake;
mod scale_out;
mod schedules;
mod serving;
mod sql;
mod task_limits;
