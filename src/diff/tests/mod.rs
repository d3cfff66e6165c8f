mod names;
mod placement;
mod prerequisites;
mod sriov;
