//! The `selmask` binary: parses the command line and hands over to the
//! library; prints the whole error chain on failure.

use clap::{CommandFactory, FromArgMatches};
use selmask::cli::{Cli, Command};

// mimalloc keeps freed pages for reuse: the training loop frees and
// reallocates the same large buffers every batch, which glibc's allocator
// returns to the kernel (page faults measured at 15% of a LeNet5 epoch).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match &cli.command {
        Command::Train(args) => {
            let sub = matches.subcommand_matches("train").expect("train matches");
            selmask::commands::train(args, sub)
        }
        Command::Pretrain(args) => selmask::commands::pretrain_cmd(args),
        Command::Export(args) => selmask::commands::deploy::export(args),
        Command::Serve(args) => {
            init_logging();
            selmask::commands::deploy::serve(args)
        }
        Command::Ingest(args) => selmask::commands::deploy::ingest(args),
        Command::Infer(args) => selmask::commands::deploy::infer(args),
        Command::Reproduce(args) => selmask::commands::reproduce(args),
        Command::Importance(args) => selmask::commands::importance(args),
        Command::Report(args) => selmask::commands::report(args),
        Command::Bench(args) => selmask::bench::run(args),
    };
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
