//! berth plans and applies KVM guest placement the way Terraform plans infrastructure.
//!
//! The modules follow the data flow, and each imports only what is upstream of it:
//!
//! ```text
//! config (HCL) ─┐
//!               ├─> diff (desired vs current: moves) ─> schedule (step DAG) ─> plan ─┬─> render (text, JSON, markdown, DOT)
//! inventory ────┘   (es.xml + libvirt + SSH facts)                                   └─> apply (executor) ─> state
//! ```
//!
//! `size` (memory sizes) is a leaf both config and inventory use.
//! `simulate` replays a plan (schedule's duration model and list scheduler) for `berth simulate`.
//!
//! libvirt and SSH stay behind the edges: `inventory` reads through them, `apply` acts through them.
//! `names` (what a host or guest name may be), `parallel` (two pieces of work on two cores),
//! `printable` (text from outside made safe for a terminal), `text_file` (UTF-8 files read with the place of a bad byte) and `remote` (the SSH
//! edge) are leaves that any stage may use.

pub mod alloc;
pub mod apply;
pub mod atomic_file;
pub mod cli;
pub mod config;
pub mod diff;
pub mod inventory;
pub mod names;
pub mod parallel;
pub mod plan;
pub mod printable;
pub mod remote;
pub mod render;
pub mod schedule;
pub mod simulate;
pub mod size;
pub mod state;
pub mod text_file;
