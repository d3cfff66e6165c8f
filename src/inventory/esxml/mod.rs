//! The OEDA Engineered System XML (es.xml): parsing into [`EsSystem`] and byte-preserving rewrites.
//!
//! - [`parse`] reads and checks a file (KVM only; Xen files are refused).
//! - [`move_guests`] rewrites the host→guest references after migrations, leaving every other
//!   byte as it was.
//! - [`synthesize`] writes synthetic but valid files for tests and benchmarks.

mod blocks;
mod error;
mod layout;
pub mod model;
mod parse;
mod position;
mod rewrite;
mod scan;
mod synth;

pub use error::{EsXmlError, EsXmlErrorDetail, EsXmlErrorKind, Location};
pub use layout::{EsLayout, GuestRefSpan, HostLayout};
pub use model::{EsCluster, EsGuest, EsHost, EsNetwork, EsOtherMachine, EsSystem, EsVolume};
pub use parse::{parse, parse_with_layout};
pub use rewrite::{
    GuestMove, TextEdit, guest_move_edits, move_guests, move_guests_in, move_guests_parsed,
};
pub use synth::{SynthSpec, synthesize};
