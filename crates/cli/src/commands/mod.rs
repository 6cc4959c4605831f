//! One module per subcommand.

pub mod pull;
pub mod push;
pub mod serve;
pub mod transfer;
