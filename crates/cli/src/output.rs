//! What every command shares in how it reports: errors as one line of text
//! or, with `--output json`, as one JSON object on stderr; and colour only
//! where a person is looking.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

/// True when the command line asks for `--output json` (or
/// `--output=json`). Read from the raw arguments so that errors clap finds
/// before any command runs are reported as JSON too.
pub fn json_requested(args: &[OsString]) -> bool {
    let mut it = args.iter().skip(1).map(|a| a.to_str().unwrap_or_default());
    while let Some(a) = it.next() {
        match a {
            "--" => return false,
            "--output=json" => return true,
            // The guard takes the value either way: it is no flag.
            "--output" if it.next() == Some("json") => return true,
            _ => {}
        }
    }
    false
}

/// Reports a failure and gives the exit code: `error: MESSAGE` on stderr,
/// or `{"error":{"exit":N,"code":NAME,"message":MESSAGE}}` on one line.
pub fn fail(message: &str, code: u8, json: bool) -> ExitCode {
    if json {
        let doc = serde_json::json!({
            "error": {
                "exit": code,
                "code": crate::exit::name(code),
                "message": message,
            }
        });
        eprintln!("{doc}");
    } else {
        eprintln!("error: {message}");
    }
    ExitCode::from(code)
}

/// Whether log lines on stderr may carry ANSI colour: only on a terminal,
/// and never when NO_COLOR is set (https://no-color.org).
pub fn colour_on_stderr() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::json_requested;

    fn args(v: &[&str]) -> Vec<std::ffi::OsString> {
        v.iter().map(Into::into).collect()
    }

    #[test]
    fn json_is_seen_in_both_spellings_and_not_after_the_separator() {
        assert!(json_requested(&args(&[
            "pavilion", "ls", "x", "--output", "json"
        ])));
        assert!(json_requested(&args(&["pavilion", "--output=json", "ls"])));
        assert!(!json_requested(&args(&[
            "pavilion", "ls", "--output", "text"
        ])));
        assert!(!json_requested(&args(&["pavilion", "ls", "--output"])));
        assert!(!json_requested(&args(&[
            "pavilion", "push", "--", "--output", "json"
        ])));
    }
}
