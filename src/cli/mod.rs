//! The command line: `berth validate | plan | show | graph | apply | state | force-unlock`.

use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
