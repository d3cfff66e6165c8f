//! What is wanted: the HCL configuration (`*.hcl` in the working directory), with source spans
//! so that every semantic error points at file:line:col.

pub mod model;

pub use model::*;
