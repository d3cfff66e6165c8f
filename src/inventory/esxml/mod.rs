//! The OEDA Engineered System XML (es.xml): parsing into [`EsSystem`] and byte-preserving rewrites.

pub mod model;
mod parse; // STUB: replaced by the esxml branch

pub use model::{EsCluster, EsGuest, EsHost, EsNetwork, EsSystem, EsVolume};
pub use parse::{EsXmlError, parse}; // STUB: replaced by the esxml branch
