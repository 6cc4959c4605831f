//! Test harness: a real `pavilion serve` process on a loopback port, over
//! SQLite or a fresh PostgreSQL database (or object storage), its peers,
//! and small HTTP helpers. Tests use the names re-exported here
//! (`use crate::common::*`); each module holds one kind of thing.
#![allow(dead_code)]

pub mod auth;
pub mod backend;
pub mod browser;
pub mod data;
pub mod distribution;
pub mod http;
pub mod model;
pub mod notation;
pub mod otlp;
pub mod pki;
pub mod process;
pub mod proxy;
pub mod receiver;
pub mod run;
// Its macros (`both_backends!`) reach the tests through main.rs's
// `#[macro_use] mod common`.
#[macro_use]
pub mod server;

pub use backend::*;
pub use data::*;
pub use distribution::*;
pub use http::*;
pub use model::*;
pub use process::*;
pub use proxy::*;
pub use server::*;
