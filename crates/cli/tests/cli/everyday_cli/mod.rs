//! The everyday commands as a user runs them, end to end through the real
//! binary against real registries (Pavilion, CNCF Distribution 2.8, with and
//! without htpasswd) and OCI layout directories, with skopeo as a peer:
//! `copy` (mounts, layouts, `--recursive` referrers and the tag-schema
//! fallback), `tag`/`tags`/`repos`, `manifest`, `blob`, `discover`, `ls`,
//! `inspect`, `login`/`logout` (inline and through a credential helper), the
//! pull content cache, and the exit codes that tell failures apart. A file
//! per command family; what they share is in `support.rs`.

mod copy;
mod exit_codes;
mod layouts;
mod login;
mod pull_cache;
mod referrers;
mod small_commands;
mod support;
