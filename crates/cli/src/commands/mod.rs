//! One module per subcommand (or family of subcommands).

pub mod blob;
pub mod cert;
pub mod copy;
pub mod database;
pub mod discover;
pub mod du;
pub mod events;
pub mod gc;
pub mod inspect;
pub mod login;
pub mod manifest;
pub mod policy;
pub mod pull;
pub mod push;
pub mod query;
pub mod repo;
pub mod serve;
pub mod serve_access;
pub mod sign;
pub mod token;
pub mod top;
pub mod verify;
pub mod watch;
pub mod watch_exec;
pub mod watch_ref;
