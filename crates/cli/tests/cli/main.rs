//! The CLI and the registry end to end, through the real `pavilion`
//! binary and real peers: one test binary for all of them, so the harness
//! and the dependencies are compiled and linked once (26 binaries took
//! minutes of a clean build to link). Run one file's tests with
//! `cargo test -p pavilion --test cli MODULE::`, e.g. `gate_attacks::`.

#[macro_use]
mod common;

mod admission_hardening;
mod api_bad_input;
mod api_blobs;
mod api_conformance_extra;
mod api_edge_input;
mod api_keys;
mod api_listing;
mod api_manifests;
mod api_uploads;
mod auth_bearer;
mod browser_harness;
mod client_file_safety;
mod client_transfers;
mod conformance_workflows;
mod crash;
mod decision_log;
mod enforcement;
mod events_feed;
mod events_queries;
mod events_slow_readers;
mod events_sources;
mod events_watch;
mod events_webhooks;
mod everyday_cli;
mod faults;
mod first_hour;
mod gate_attacks;
mod gc_faults;
mod gc_stress;
mod gc_support;
mod live_transfers;
mod model_cli;
mod notary_cli;
mod observability;
mod observability_metrics;
mod observability_traces;
mod peers;
mod policy_cli;
mod quota;
mod registry_auth;
mod registry_authz;
mod registry_clients;
mod registry_identities;
mod registry_tokens;
mod scale_out;
mod smoke;
mod tls_client;
mod ui_api;
mod ui_auth;
mod ui_bad_input;
mod ui_pages;
mod ui_replicas;
mod ui_scale;
mod ui_support;
mod upload_expiry;
mod usage;
