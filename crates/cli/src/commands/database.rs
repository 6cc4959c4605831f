//! The metadata database `serve` uses, found from the same keys (config
//! file, data directory, database URL), for the commands that work on it
//! directly without a running server (`token`, `du`).

use crate::exit::{CmdResult, Context, Failure, UsageError};
use clap::Args;
use pavilion_store::MetaStore;
use std::path::PathBuf;

/// Where the metadata database is: the keys `serve` reads it from.
#[derive(Args, Debug)]
pub struct DbArgs {
    /// The `serve` configuration file (its data and database_url keys are read).
    #[arg(long, env = "PAVILION_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory of `serve`, whose meta.db is the SQLite database [default: ./pavilion-data].
    #[arg(long, env = "PAVILION_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The metadata database of `serve`: postgres://user@host:port/db [default: SQLite in the data directory].
    #[arg(long, env = "PAVILION_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

/// Connects to the metadata database `serve` uses with these keys.
pub async fn open(db: &DbArgs) -> CmdResult<MetaStore> {
    let (url, dir) = crate::config::metadata_database(
        db.config.as_deref(),
        db.data.clone(),
        db.database_url.clone(),
    )
    .map_err(Failure::other)?;
    // A data directory that does not exist is a typo far more often than
    // a registry not yet started: a key made in a new database there would
    // work nowhere.
    if let Some(dir) = dir {
        if !dir.is_dir() {
            return Err(UsageError(format!(
                "data directory {} does not exist: give the --data (or --config, --database-url) that serve uses",
                dir.display()
            ))
            .into());
        }
    }
    MetaStore::connect(&url)
        .await
        .map_err(Failure::other)
        .context("opening the metadata database")
}
