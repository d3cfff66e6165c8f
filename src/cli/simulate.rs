//! `berth simulate [FILE]`: replays a saved plan, or one made now, on the duration model.

use crate::plan;
use crate::simulate::{self, Options};

use super::args::SimulateArgs;
use super::commands::{make_plan, print};
use super::error::CliError;
use super::exit;

pub fn run(args: &SimulateArgs) -> Result<u8, CliError> {
    let plan = match &args.file {
        Some(path) => plan::file::load(path)?,
        None => make_plan()?,
    };
    let options = Options {
        parallelism: args.parallelism,
        max_inbound_per_host: args.max_inbound,
        max_outbound_per_host: args.max_outbound,
        link_bandwidth_mib_s: args.link_bandwidth.map(f64::from),
    };
    let report = simulate::simulate(&plan, &options)?;
    print(&if args.json {
        simulate::report_json(&report)
    } else {
        simulate::report_text(&report)
    })?;
    Ok(if plan.is_ok() { exit::OK } else { exit::ERROR })
}
