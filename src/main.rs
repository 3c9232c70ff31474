//! The `wasm-hypervisor` binary: the daemon and its client in one command.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    wasm_hypervisor::cli::main()
}
