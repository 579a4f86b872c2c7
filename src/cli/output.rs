//! Writing to stdout and stderr without `println!`'s panic when the reader
//! has gone (`scaffolder tasks logs ID | head -1`): the command ends at once,
//! quietly, with exit code 141, as a program killed by SIGPIPE does under a
//! shell (`git log | head`). SIGPIPE itself stays ignored, as Rust sets it, so
//! a peer closing a socket or a child's stdin is an error, not a death.

use std::fmt;
use std::io::{self, Write};

use super::Exit;

/// Writes to stdout; a closed pipe ends the process (see the module).
pub fn stdout(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        failed("stdout", &e);
    }
}

/// Writes to stderr; a closed pipe ends the process (see the module).
pub fn stderr(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    if let Err(e) = err.write_fmt(args) {
        failed("stderr", &e);
    }
}

fn failed(stream: &str, e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(i32::from(Exit::BrokenPipe.code()));
    }
    // Anything else (a full disk behind `> file`): say so where possible.
    let _ = writeln!(io::stderr(), "scaffolder: cannot write to {stream}: {e}");
    std::process::exit(i32::from(Exit::Failed.code()));
}

/// `print!` through [`stdout`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::stdout(format_args!($($arg)*)) };
}

/// `println!` through [`stdout`].
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` through [`stderr`].
#[macro_export]
macro_rules! errout {
    ($($arg:tt)*) => { $crate::cli::output::stderr(format_args!($($arg)*)) };
}

/// `eprintln!` through [`stderr`].
#[macro_export]
macro_rules! errln {
    () => { $crate::cli::output::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}
