//! The standard streams of child processes: writing a command's input and
//! reading another process's stderr line by line.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;

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
