//! `mpc-broker`: see the `broker` crate.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match broker::config::Args::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mpc-broker: {}", broker::error_chain(&e));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mpc-broker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match broker::Broker::new(config).start().await {
            Ok(running) => match running.until_signalled().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mpc-broker: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("mpc-broker: {}", broker::error_chain(&e));
                ExitCode::FAILURE
            }
        }
    })
}
