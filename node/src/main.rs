//! `mpc-node`: see the crate documentation in `lib.rs`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    node::cli::main()
}
