//! The OEDA Engineered System XML (es.xml): parsing into [`EsSystem`] and byte-preserving rewrites.

pub mod model;

pub use model::{EsCluster, EsGuest, EsHost, EsNetwork, EsSystem, EsVolume};
