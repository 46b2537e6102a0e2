//! The `gloss` server binary.

fn main() -> std::process::ExitCode {
    gloss::run_cli()
}
