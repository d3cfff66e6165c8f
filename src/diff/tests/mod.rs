mod intents;
mod names;
mod placement;
mod prerequisites;
mod rules;
mod sriov;
