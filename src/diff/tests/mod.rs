mod names;
mod placement;
mod prerequisites;
