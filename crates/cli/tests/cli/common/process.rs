//! Child processes other than the server: external tools (skopeo,
//! htpasswd, tar) run bounded in time, what this machine offers them, and
//! the standard streams: writing a command's input, reading its output.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::run::COMMAND_TIMEOUT;

/// Whether `cmd` is on PATH (skopeo, htpasswd and tar are optional peers).
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether this machine lets an unprivileged process mount a tmpfs in its
/// own user and mount namespaces (how the full-disk tests get a tiny disk).
pub fn can_unshare_mount() -> bool {
    Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs \"$d\"",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs an external tool (skopeo, htpasswd, oras-py) with no input, bounded
/// in time; asserts it succeeds and returns its stdout.
pub fn tool(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let (out, err) = (read_all(child.stdout.take()), read_all(child.stderr.take()));
    let status = wait_bounded(&mut child, &what);
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "{what} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a child's piped stream to its end on a thread of its own, so a
/// child that writes more than a pipe holds never blocks on it.
pub fn read_all(stream: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    let mut stream = stream.expect("stream piped");
    std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stream.read_to_end(&mut b);
        b
    })
}

/// Waits for `child`; kills it and fails the test after [`COMMAND_TIMEOUT`].
pub fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes a command's standard input. A command may exit before it reads
/// it (a usage error found first): the broken pipe that leaves is the
/// command's choice, not a failure of the test's harness.
pub fn feed(stdin: &mut impl std::io::Write, input: &[u8]) {
    match stdin.write_all(input) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("writing the command's standard input: {e}"),
    }
}

/// The lines `child` writes on stderr, read on a thread of their own (so a
/// test can wait for one with a deadline).
pub fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
