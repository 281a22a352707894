//! The `selmask` binary: parses the command line and hands over to the
//! library; prints the whole error chain on failure.

use clap::{CommandFactory, FromArgMatches};
use selmask::cli::{Cli, Command};

// mimalloc keeps freed pages for reuse: the training loop frees and
// reallocates the same large buffers every batch, which glibc's allocator
// returns to the kernel (page faults measured at 15% of a LeNet5 epoch).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its 16th option in both the v2 and
/// the v3 headers the pinned `libmimalloc-sys` builds (the Rust bindings
/// leave this one out).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc's default purge delays in milliseconds: 10 in v2, 1000 in v3
/// (the one built here).
const MI_DEFAULT_PURGE_DELAYS: [std::os::raw::c_long; 2] = [10, 1000];

/// Training frees and reallocates the same multi-megabyte buffers every
/// batch; mimalloc by default hands them back to the kernel a second after
/// they are freed, and the kernel zeroes them again on the next touch
/// (ResNet20, 40 batches: 140,000 page faults with the default and 1,500
/// without purging, 7-13% of the time; see docs/performance.md). Long jobs
/// keep them. An explicit `MIMALLOC_PURGE_DELAY` wins. If the option does
/// not hold one of mimalloc's default delays (say a mimalloc with another
/// option order), nothing is changed rather than the wrong option.
fn keep_freed_pages() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: plain reads and writes of mimalloc's option table, which it
    // allows at any time from any thread.
    unsafe {
        if MI_DEFAULT_PURGE_DELAYS.contains(&libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)) {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
}

fn main() {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if matches!(cli.command, Command::Train(_) | Command::Pretrain(_) | Command::Reproduce(_) | Command::Bench(_)) {
        keep_freed_pages();
    }
    if matches!(cli.command, Command::Serve(_)) {
        init_logging();
    }
    let result = selmask::cli::run(&cli, &matches);
    if let Err(err) = result {
        eprintln!("error: {err}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}

/// Server logs (5xx details, shutdown) to stderr; `RUST_LOG`-style levels
/// are not needed here: warnings and errors always, info for lifecycle.
fn init_logging() {
    tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_writer(std::io::stderr).init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guards the hand-written option index: option 15 must hold a default
    /// purge delay and take -1, and its neighbour (NUMA nodes, default 0)
    /// must not look like one.
    #[test]
    fn option_15_is_mimallocs_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment has set it; nothing to check
        }
        // SAFETY: option reads, as in `keep_freed_pages`.
        unsafe {
            assert!(MI_DEFAULT_PURGE_DELAYS.contains(&libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)));
            assert!(!MI_DEFAULT_PURGE_DELAYS.contains(&libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY + 1)));
        }
        keep_freed_pages();
        // SAFETY: as above.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }, -1);
    }
}
