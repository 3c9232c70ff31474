//! The `wasm-hypervisor` binary: the daemon and its client in one command.

fn main() -> std::process::ExitCode {
    wasm_hypervisor::cli::main()
}
