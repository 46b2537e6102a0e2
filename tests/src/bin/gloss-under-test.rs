//! The `gloss` binary, rebuilt inside the test package so tests can find it.

fn main() -> std::process::ExitCode {
    gloss::run_cli()
}
