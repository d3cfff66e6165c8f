//! The `berth` binary: parses the command line and hands over to [`berth::cli`].

#[global_allocator]
static ALLOCATOR: berth::alloc::Allocator = berth::alloc::Allocator {};

fn main() -> std::process::ExitCode {
    berth::alloc::configure();
    berth::cli::main()
}
