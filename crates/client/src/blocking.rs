//! Blocking work off the async workers: the workspace's one helper,
//! `pavilion_dio::blocking` (its join error is an I/O error, which this
//! crate's error type takes with `?`).

pub(crate) use pavilion_dio::blocking::spawn;
