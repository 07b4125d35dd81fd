//! The `airlock` binary: parse the command line, run, map the outcome to an exit code.
//! All logic lives in the library; see `airlock::cli`.

fn main() -> std::process::ExitCode {
    airlock::cli::main()
}
