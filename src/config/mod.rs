//! What is wanted: the HCL configuration (`*.hcl` in the working directory), with source spans
//! so that every semantic error points at file:line:col.
//!
//! Pipeline: [`load_dir`] reads the files, hcl-edit parses them (keeping spans), `validate`
//! checks them against the block/attribute table in `schema`, and `build` fills the model.

mod build;
mod command_line;
mod error;
pub mod fmt;
mod load;
pub mod model;
pub mod pci;
mod safety;
mod schema;
pub(crate) mod suggest;
mod syntax;
mod validate;
mod value;

pub use build::DEFAULT_LIBVIRT_URI;
pub use command_line::{COMMAND_LINE, COMMAND_LINE_REBALANCE, CommandLineIntents};
pub use error::{ConfigError, ConfigNote, LocatedError, Location, render};
pub use load::{load_dir, parse_str};
pub use model::*;
pub use pci::PciAddress;
pub use safety::VOLUME_PLACEHOLDERS;
