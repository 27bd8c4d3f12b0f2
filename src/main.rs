//! The `motherstream` binary: everything lives in the library; see `cli::main`.

fn main() -> std::process::ExitCode {
    motherstream::cli::main()
}
