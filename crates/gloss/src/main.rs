//! The `gloss` server binary.

// Workers run encoders whose tensors are allocated and freed per operation; glibc's allocator
// hands large blocks back to the system each time (page faults and zeroing on the next one),
// mimalloc keeps them: about 10% more encoder throughput (crates/gloss-ml/BENCH.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gloss::run_cli()
}
